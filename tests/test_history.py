"""history: each benchmark's median across stored runs, oldest first, from the files alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import run_cli
from sqlabench import history
from sqlabench.errors import SqlabenchError
from test_results import make_result

A = "test_engines[sqlite-raw-count]"
B = "test_engines[sqlite-core-count]"


def stored(tmp_path: Path, name: str, medians: dict[str, float], **info: object) -> Path:
    data = make_result(**info)
    data["benchmarks"] = [
        {
            "name": bench,
            "extra_info": {"question": "engines", "backend": "sqlite"},
            "stats": {"median": median, "data": [median]},
        }
        for bench, median in medians.items()
    ]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    """Given newest first: the history must order them by when they started."""
    return [
        stored(tmp_path, "c", {A: 3e-6, B: 2e-3}, started="2026-11-27T09:00:00+00:00",
               suite_commit="c5f0252aaaaa-dirty"),
        stored(tmp_path, "a", {A: 1e-6}, started="2026-11-25T09:00:00+00:00",
               suite_commit="1111111bbbbb"),
        stored(tmp_path, "b", {B: 1e-3}, started="2026-11-26T09:00:00+00:00",
               suite_commit="2222222ccccc", profile="quick"),
    ]  # fmt: skip


def test_series_orders_runs_by_start_and_aligns_medians(three_runs: list[Path]) -> None:
    trend = history.series(three_runs)
    assert trend.runs == ("2026-11-25 1111111", "2026-11-26 2222222", "2026-11-27 c5f0252+")
    assert trend.datetimes[0] == datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert [r.path for r in trend.details] == [str(three_runs[i]) for i in (1, 2, 0)]
    assert trend.series == {A: [1e-6, None, 3e-6], B: [None, 1e-3, 2e-3]}
    assert trend.ratio(A) == pytest.approx(3.0) and trend.ratio(B) == pytest.approx(2.0)
    assert history.ratio([None, 1.0, None]) is None


def test_the_table_shows_each_run_as_a_column(three_runs: list[Path]) -> None:
    t = history.table(history.series(three_runs))
    assert t.columns == (
        "benchmark", "2026-11-25 1111111", "2026-11-26 2222222", "2026-11-27 c5f0252+",
        "last/first",
    )  # fmt: skip
    assert t.rows == [
        (A, "1.0 µs", "-", "3.0 µs", "3.00×"),
        (B, "-", "1.00 ms", "2.00 ms", "2.00×"),
    ]
    assert any("different profiles (quick, smoke)" in note for note in t.notes)


def test_runs_of_one_day_and_commit_get_their_time(tmp_path: Path) -> None:
    runs = [
        stored(tmp_path, n, {A: 1e-6}, started=f"2026-11-25T0{h}:00:00+00:00")
        for n, h in (("x", 1), ("y", 2), ("z", 2))
    ]
    assert history.series(runs).runs == (
        "2026-11-25 01:00:00 abc", "2026-11-25 02:00:00 abc #1", "2026-11-25 02:00:00 abc #2",
    )  # fmt: skip


def test_cli_table_and_json(three_runs: list[Path]) -> None:
    done = run_cli("history", *map(str, three_runs))
    assert done.returncode == 0, done.stderr
    assert "2026-11-26 2222222" in done.stdout and "3.00×" in done.stdout
    assert A in done.stdout  # the whole id: rich must not read "[sqlite-raw-count]" as markup
    as_json = run_cli("history", *map(str, three_runs), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [r["label"] for r in data["runs"]] == list(history.series(three_runs).runs)
    assert data["benchmarks"][0] == {"name": A, "medians": [1e-6, None, 3e-6],
                                     "last_over_first": pytest.approx(3.0)}  # fmt: skip


def test_bad_files_are_one_line_and_exit_2(tmp_path: Path, three_runs: list[Path]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"benchmarks": []}')
    odd = stored(tmp_path, "odd", {A: 1.0}, started="yesterday")
    for bad, message in ((junk, "not a sqlabench result"), (odd, "not a timestamp"),
                         (tmp_path / "gone.json", "no such result file")):  # fmt: skip
        done = run_cli("history", str(three_runs[0]), str(bad))
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    with pytest.raises(SqlabenchError, match="at least one"):
        history.series([])
