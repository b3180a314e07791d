"""`sqlabench baseline`: the new baseline in place, the old one kept, byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import run_cli
from sqlabench import baseline, results
from sqlabench.cli import cli
from test_results import make_result


def run_file(directory: Path, name: str, started: str, **info: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(make_result(started=started, **info)))
    return path


def sqlabench_baseline(*args: str) -> Result:
    return CliRunner().invoke(cli, ["baseline", *args])


def test_promoting_keeps_the_previous_baseline(tmp_path: Path) -> None:
    runs, path = tmp_path / "runs", tmp_path / "baseline.json"
    first = run_file(runs, "first", "2026-11-25T01:00:00+00:00")
    second = run_file(runs, "second", "2026-11-26T01:00:00+00:00", machine="other")
    args = ["--baseline", str(path), "--archive", str(runs)]
    assert sqlabench_baseline("--promote", str(first), *args).exit_code == 0
    assert path.read_bytes() == first.read_bytes()
    assert sorted(p.name for p in runs.iterdir()) == ["first.json", "second.json"]

    os.utime(path, (1_000_000, 1_000_000))
    done = sqlabench_baseline("--promote", str(second), *args)
    assert done.exit_code == 0, done.output
    assert path.read_bytes() == second.read_bytes()
    kept = runs / "baseline-20261125T010000Z.json"
    assert kept.read_bytes() == first.read_bytes()
    assert kept.stat().st_mtime == 1_000_000  # not taken for the newest run by `ls -t`
    assert f"the previous one is kept as {kept}" in done.stdout

    assert sqlabench_baseline("--promote", str(first), *args).exit_code == 0  # nothing overwritten
    again = runs / "baseline-20261126T010000Z.json"
    assert again.read_bytes() == second.read_bytes()
    done = sqlabench_baseline("--promote", str(first), *args)
    assert done.exit_code == 0 and "already the baseline" in done.stdout
    assert sorted(p.name for p in runs.iterdir()) == [
        "baseline-20261125T010000Z.json", "baseline-20261126T010000Z.json",
        "first.json", "second.json",
    ]  # fmt: skip


def test_newest_is_the_run_that_started_last(tmp_path: Path) -> None:
    runs, path = tmp_path / "runs", tmp_path / "baseline.json"
    run_file(runs, "zzz-older", "2026-11-25T01:00:00+00:00")
    newest = run_file(runs, "aaa-newer", "2026-11-27T01:00:00+00:00")
    run_file(runs, "baseline-20261130T000000Z", "2026-11-30T00:00:00+00:00")  # an archive
    (runs / "junk.json").write_text("{not json")
    assert baseline.newest(runs) == newest
    done = sqlabench_baseline("--newest", str(runs), "--baseline", str(path))
    assert done.exit_code == 0, done.output
    assert path.read_bytes() == newest.read_bytes()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"complete": False}, "incomplete run"),
        ({"failures": [{"benchmark": "b", "error": "x"}]}, "failing benchmarks"),
    ],
)
def test_a_broken_run_is_refused_and_nothing_moves(
    tmp_path: Path, info: dict[str, object], message: str
) -> None:
    runs, path = tmp_path / "runs", tmp_path / "baseline.json"
    good = run_file(runs, "good", "2026-11-25T01:00:00+00:00")
    path.write_bytes(good.read_bytes())
    bad = run_file(runs, "bad", "2026-11-26T01:00:00+00:00", **info)
    done = sqlabench_baseline(
        "--promote", str(bad), "--baseline", str(path), "--archive", str(runs)
    )
    assert done.exit_code == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("sqlabench: error: ") and message in line
    assert path.read_bytes() == good.read_bytes()
    assert sorted(p.name for p in runs.iterdir()) == ["bad.json", "good.json"]
    done = sqlabench_baseline("--newest", str(tmp_path / "empty"), "--baseline", str(path))
    assert done.exit_code == 2 and "no result file" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--promote", "a.json", "--newest", "runs"], "--promote or --newest, not both"),
        (["--promote", "a.json", "engines", "-b", "sqlite"], "engines --backend: options of a run"),
        (["--newest", "runs", "--repeat", "2"], "--repeat: options of a run"),
        (["--promote", "no-such.json"], "no-such.json"),
    ],
)
def test_promoting_takes_no_run_options(args: list[str], message: str, tmp_path: Path) -> None:
    done = sqlabench_baseline(*args, "--baseline", str(tmp_path / "b.json"))
    assert done.exit_code == 2, done.output
    [line] = done.stderr.strip().splitlines()
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_a_baseline_run_counts_repeats_and_is_promoted(tmp_path: Path) -> None:
    """What `make baseline` runs: --repeat passes and the counting pass, then promoted."""
    runs, path = tmp_path / "runs", tmp_path / "baseline.json"
    old = run_file(runs, "old", "2026-11-25T01:00:00+00:00")
    path.write_bytes(old.read_bytes())
    done = run_cli(
        "baseline", "engines", "--profile", "smoke", "-b", "sqlite", "--repeat", "2",
        "--only", "test_engines[sqlite-raw-pk_lookup]", "--out", str(runs),
        "--baseline", str(path), "--archive", str(runs),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [wrote] = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    new = Path(wrote.removeprefix("wrote "))
    assert f"{path} is now {new}" in done.stdout
    assert path.read_bytes() == new.read_bytes()
    assert (runs / "baseline-20261125T010000Z.json").read_bytes() == old.read_bytes()
    result = results.load(path)
    assert result.info.repeat == 2 and result.info.counting is not None
    [bench] = result.benchmarks
    assert bench.extra_info["passes"] == 2 and bench.extra_info.get("py_calls")
