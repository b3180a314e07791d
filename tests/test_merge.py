"""merge: result files of the same benchmarks, run one after another, joined into a new one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from sqlabench import results
from sqlabench.errors import SqlabenchError
from test_results import make_result

A = "test_engines[sqlite-raw-count]"
B = "test_engines[sqlite-core-count]"


def one_run(tmp_path: Path, name: str, rounds: dict[str, list[float]], **info: Any) -> Path:
    """A single-pass result file, as `sqlabench run` writes it, with these rounds."""
    data = make_result(**info)
    data["benchmarks"] = []
    for bench, values in rounds.items():
        data["benchmarks"].append(
            {
                "name": bench,
                "fullname": bench,
                "extra_info": {"question": "engines", "backend": "sqlite", "verified": True},
                "stats": {"median": sorted(values)[len(values) // 2], "data": values},
            }
        )
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(results.merge_passes([data])))
    return path


def test_runs_are_joined_pass_by_pass(tmp_path: Path) -> None:
    late = one_run(
        tmp_path, "late", {A: [4.0, 5.0, 6.0]},
        started="2026-11-25T02:00:00+00:00", finished="2026-11-25T02:01:00+00:00",
        failures=[{"benchmark": B, "error": "boom"}], complete=False,
    )  # fmt: skip
    early = one_run(
        tmp_path, "early", {A: [1.0, 2.0, 3.0], B: [7.0]},
        started="2026-11-25T01:00:00+00:00", finished="2026-11-25T01:01:00+00:00",
        skipped=[{"benchmark": "x", "reason": "too big"}], machine="first",
    )  # fmt: skip
    merged = results.merge_files([late, early])  # taken in the order they started
    info = results.RunInfo.from_json(merged["sqlabench"])
    assert info.started == "2026-11-25T01:00:00+00:00"
    assert info.finished == "2026-11-25T02:01:00+00:00"
    assert info.repeat == 2 and info.complete is False and info.machine == "first"
    assert info.failures == ({"benchmark": B, "error": "boom"},)
    assert info.skipped == ({"benchmark": "x", "reason": "too big"},)
    by_name = {b["name"]: b for b in merged["benchmarks"]}
    assert list(by_name) == [A, B]
    assert by_name[A]["stats"]["data"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert by_name[A]["extra_info"]["passes"] == 2
    assert by_name[A]["extra_info"]["pass_medians"] == [2.0, 5.0]
    assert by_name[A]["extra_info"]["pass_rounds"] == [3, 3]
    assert by_name[B]["extra_info"]["passes"] == 1  # only the early run had it
    assert results.parse(merged, "merged").info.repeat == 2


def test_a_file_of_several_passes_contributes_each_pass_median(tmp_path: Path) -> None:
    first = one_run(tmp_path, "a", {A: [1.0, 2.0, 3.0]}, started="2026-11-25T01:00:00+00:00")
    second = one_run(tmp_path, "b", {A: [2.0, 4.0]}, started="2026-11-25T02:00:00+00:00")
    third = one_run(tmp_path, "c", {A: [9.0]}, started="2026-11-25T03:00:00+00:00")
    pair = tmp_path / "pair"
    done = run_cli("merge", str(first), str(second), "--out", str(pair))
    assert done.returncode == 0, done.stderr
    [two] = pair.iterdir()
    assert done.stdout.strip() == f"wrote {two}"
    merged = results.merge_files([two, third])
    [bench] = merged["benchmarks"]
    assert bench["extra_info"]["passes"] == 3
    assert bench["extra_info"]["pass_medians"] == [2.0, 3.0, 9.0]
    assert bench["extra_info"]["pass_rounds"] == [3, 2, 1]
    assert bench["stats"]["data"] == [1.0, 2.0, 3.0, 2.0, 4.0, 9.0]
    assert merged["sqlabench"]["repeat"] == 3
    # the headline is the median of the three passes' medians (the file of two passes first
    # became one value per file: 5.5 over 2 "processes")
    assert bench["extra_info"]["time"]["median"] == 3.0
    assert bench["extra_info"]["time"]["processes"] == 3
    assert results.parse(merged, "merged").benchmarks[0].median == 3.0


def test_pass_medians_are_recomputed_from_pass_rounds_when_missing(tmp_path: Path) -> None:
    path = one_run(tmp_path, "a", {A: [1.0, 3.0, 10.0, 20.0, 30.0]})
    data = json.loads(path.read_text())
    info = data["benchmarks"][0]["extra_info"]
    info["pass_rounds"], info["passes"] = [2, 3], 2
    del info["pass_medians"]
    path.write_text(json.dumps(data))
    later = one_run(tmp_path, "b", {A: [5.0]}, started="2026-11-25T00:00:01+00:00")
    [bench] = results.merge_files([path, later])["benchmarks"]
    assert bench["extra_info"]["pass_medians"] == [2.0, 20.0, 5.0]
    assert bench["extra_info"]["pass_rounds"] == [2, 3, 1]
    assert bench["extra_info"]["passes"] == 3


def test_merge_never_overwrites_and_names_the_run(tmp_path: Path) -> None:
    a = one_run(tmp_path, "a", {A: [1.0]}, started="2026-11-25T01:00:00+00:00")
    b = one_run(tmp_path, "b", {A: [2.0]}, started="2026-11-25T01:05:00+00:00")
    out = tmp_path / "merged"
    for _ in range(2):
        assert run_cli("merge", str(a), str(b), "--out", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "20261125T010000Z-engines-smoke-merged-2.json",
        "20261125T010000Z-engines-smoke-merged.json",
    ]
    assert results.load(out / "20261125T010000Z-engines-smoke-merged.json").info.repeat == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("profile", "quick"),
        ("questions", ["loading"]),
        ("suite_commit", "def"),
        ("harness_hash", "other"),
        ("sqlalchemy", "2.0.58"),
        ("injected_work", 0.1),
    ],
)
def test_runs_of_different_benchmarks_are_refused(tmp_path: Path, field: str, value: Any) -> None:
    a = one_run(tmp_path, "a", {A: [1.0]})
    b = one_run(tmp_path, "b", {A: [2.0]}, **{field: value})
    with pytest.raises(SqlabenchError, match=f"{field} differs"):
        results.merge_files([a, b])
    out = tmp_path / "out"
    done = run_cli("merge", str(a), str(b), "--out", str(out))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and f"{field} differs" in done.stderr
    assert not out.exists()


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    a = one_run(tmp_path, "a", {A: [1.0]})
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    out = tmp_path / "out"
    cases = [
        ((str(a), str(junk)), "not JSON"),
        ((str(a), str(tmp_path / "nope.json")), "no such result file"),
        ((str(a), str(a)), "given twice"),
        ((), "Missing argument"),
    ]
    for args, message in cases:
        done = run_cli("merge", *args, "--out", str(out))
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert not out.exists()


def test_a_merge_says_how_its_counts_were_counted(tmp_path: Path) -> None:
    """The gate counts only a side's last pass: the merged file keeps that pass's counts and
    the `counting` record that describes them, not the first pass's None."""
    counted = {"tool": "callgrind", "benchmarks_counted": 1}
    first = one_run(tmp_path, "first", {A: [1.0]})
    last = one_run(
        tmp_path, "last", {A: [2.0]}, counting=counted,
        started="2026-11-25T03:00:00+00:00", finished="2026-11-25T03:01:00+00:00",
    )  # fmt: skip
    data = json.loads(last.read_text())
    data["benchmarks"][0]["extra_info"]["instructions"] = 5e5
    last.write_text(json.dumps(data))
    merged = results.merge_files([first, last])
    assert merged["sqlabench"]["counting"] == counted
    assert merged["benchmarks"][0]["extra_info"]["instructions"] == 5e5
