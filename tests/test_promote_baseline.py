"""scripts/promote_baseline.py: the new baseline in place, the old one kept, byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_bench_pr import load_script
from test_results import make_result

promote = load_script("promote_baseline")


def run_file(directory: Path, name: str, started: str, **info: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(make_result(started=started, **info)))
    return path


def test_promoting_keeps_the_previous_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, baseline = tmp_path / "runs", tmp_path / "baseline.json"
    first = run_file(runs, "first", "2026-11-25T01:00:00+00:00")
    second = run_file(runs, "second", "2026-11-26T01:00:00+00:00", machine="other")
    args = ["--baseline", str(baseline), "--archive", str(runs)]
    assert promote.main([str(first), *args]) == 0
    assert baseline.read_bytes() == first.read_bytes()
    assert sorted(p.name for p in runs.iterdir()) == ["first.json", "second.json"]

    os.utime(baseline, (1_000_000, 1_000_000))
    assert promote.main([str(second), *args]) == 0
    assert baseline.read_bytes() == second.read_bytes()
    kept = runs / "baseline-20261125T010000Z.json"
    assert kept.read_bytes() == first.read_bytes()
    assert kept.stat().st_mtime == 1_000_000  # not taken for the newest run by `ls -t`
    assert f"the previous one is kept as {kept}" in capsys.readouterr().out

    assert promote.main([str(first), *args]) == 0  # back to the first: nothing overwritten
    again = runs / "baseline-20261126T010000Z.json"
    assert again.read_bytes() == second.read_bytes()
    assert promote.main([str(first), *args]) == 0
    assert "already the baseline" in capsys.readouterr().out
    assert sorted(p.name for p in runs.iterdir()) == [
        "baseline-20261125T010000Z.json", "baseline-20261126T010000Z.json",
        "first.json", "second.json",
    ]  # fmt: skip


def test_newest_is_the_run_that_started_last(tmp_path: Path) -> None:
    runs, baseline = tmp_path / "runs", tmp_path / "baseline.json"
    run_file(runs, "zzz-older", "2026-11-25T01:00:00+00:00")
    newest = run_file(runs, "aaa-newer", "2026-11-27T01:00:00+00:00")
    run_file(runs, "baseline-20261130T000000Z", "2026-11-30T00:00:00+00:00")  # an archive
    (runs / "junk.json").write_text("{not json")
    assert promote.newest(runs) == newest
    assert promote.main(["--newest", str(runs), "--baseline", str(baseline)]) == 0
    assert baseline.read_bytes() == newest.read_bytes()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"complete": False}, "incomplete run"),
        ({"failures": [{"benchmark": "b", "error": "x"}]}, "failing benchmarks"),
    ],
)
def test_a_broken_run_is_refused_and_nothing_moves(
    tmp_path: Path, info: dict[str, object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, baseline = tmp_path / "runs", tmp_path / "baseline.json"
    good = run_file(runs, "good", "2026-11-25T01:00:00+00:00")
    baseline.write_bytes(good.read_bytes())
    bad = run_file(runs, "bad", "2026-11-26T01:00:00+00:00", **info)
    assert promote.main([str(bad), "--baseline", str(baseline), "--archive", str(runs)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert baseline.read_bytes() == good.read_bytes()
    assert sorted(p.name for p in runs.iterdir()) == ["bad.json", "good.json"]
    assert promote.main(["--newest", str(tmp_path / "empty"), "--baseline", str(baseline)]) == 2
    assert "no result file" in capsys.readouterr().err
