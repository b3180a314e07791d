import json
import random
from pathlib import Path
from typing import Any

import pytest

from sqlabench import results
from sqlabench.errors import SqlabenchError


def make_result(**overrides: object) -> dict[str, Any]:
    info = results.RunInfo(
        schema_version=results.SCHEMA_VERSION,
        questions=("engines",),
        profile="smoke",
        started="2026-11-25T00:00:00+00:00",
        finished="2026-11-25T00:01:00+00:00",
        complete=True,
        suite_version="0",
        suite_commit="abc",
        python="3.11",
        sqlalchemy="2.1",
        machine="test",
        backends=(
            results.BackendInfo(
                "sqlite", "sqlite", "sync", "sqlite+pysqlite", "sqlite3", "3", "3", "file"
            ),
        ),
    ).to_json()
    info.update(overrides)
    return {
        "benchmarks": [
            {
                "name": "test_engines[sqlite-raw-count]",
                "fullname": "x",
                "extra_info": {"question": "engines", "backend": "sqlite"},
                "stats": {"median": 1e-5, "data": [1e-5, 2e-5]},
            }
        ],
        results.RESULT_KEY: info,
    }


def test_round_trip(tmp_path: Path) -> None:
    path = results.write_new(make_result(), tmp_path, "run")
    loaded = results.load(path)
    assert loaded.info.questions == ("engines",)
    assert loaded.info.backends[0].name == "sqlite"
    assert loaded.benchmarks[0].median == 1e-5
    assert loaded.benchmarks[0].data == [1e-5, 2e-5]


def test_write_new_never_overwrites_and_leaves_no_partial_files(tmp_path: Path) -> None:
    first = results.write_new(make_result(profile="quick"), tmp_path, "run")
    before = first.read_bytes()
    second = results.write_new(make_result(profile="full"), tmp_path, "run")
    assert first != second
    assert first.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-2.json", "run.json"]


def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SqlabenchError, match="cannot write results"):
        results.ensure_writable_dir(blocker / "runs")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such result file"),
        ("{not json", "not JSON"),
        (json.dumps({"hello": 1}), "not a benchmark result"),
        (json.dumps({"benchmarks": []}), "not a sqlabench result"),
    ],
)
def test_unreadable_files_are_one_line_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SqlabenchError, match=message) as info:
        results.load(path)
    assert "\n" not in str(info.value)


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(make_result(schema_version=99)))
    with pytest.raises(SqlabenchError, match="schema version 99 is not supported"):
        results.load(path)


def test_passes_are_merged_round_by_round() -> None:
    def one_pass(data: list[float], verified: bool) -> dict[str, Any]:
        return {
            "benchmarks": [
                {
                    "name": "b",
                    "extra_info": {"verified": verified, "statements": 1},
                    "stats": {"data": data, "median": sorted(data)[len(data) // 2]},
                }
            ]
        }

    merged = results.merge_passes([one_pass([1.0, 2.0, 3.0], True), one_pass([4.0, 5.0], True)])
    [bench] = merged["benchmarks"]
    assert bench["stats"]["data"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert bench["stats"]["rounds"] == 5 and bench["stats"]["median"] == 3.0
    assert bench["stats"]["min"] == 1.0 and bench["stats"]["max"] == 5.0
    assert bench["extra_info"] == {
        "verified": True, "statements": 1, "passes": 2,
        "pass_rounds": [3, 2], "pass_medians": [2.0, 4.5],
        # the median of the two processes' medians; resampled, the median of two is one of
        # them or their mean: the interval runs from the one to the other
        "time": {"median": 3.25, "ci95": [2.0, 4.5], "processes": 2},
        "pass_numbers": [1, 2],
    }  # fmt: skip
    failed_once = results.merge_passes([one_pass([1.0], True), one_pass([2.0], False)])
    assert failed_once["benchmarks"][0]["extra_info"]["verified"] is False


def test_counts_of_a_counted_pass_survive_a_merge_with_uncounted_passes() -> None:
    """The gate counts only the last pass of each side, then merges a rerun that did not
    count: the merged benchmark must keep its counts, or the gate loses its evidence."""

    def one_pass(data: list[float], **counts: float) -> dict[str, Any]:
        return {
            "benchmarks": [
                {
                    "name": "b",
                    "extra_info": {"verified": True, "statements": 1, **counts},
                    "stats": {"data": data, "median": data[0]},
                }
            ]
        }

    merged = results.merge_passes(
        [one_pass([1.0]), one_pass([2.0], instructions=5e5, py_calls=300.0), one_pass([3.0])]
    )
    info = merged["benchmarks"][0]["extra_info"]
    assert info["instructions"] == 5e5 and info["py_calls"] == 300.0
    assert (
        "instructions" not in results.merge_passes([one_pass([1.0])])["benchmarks"][0]["extra_info"]
    )


def bench_of(process_medians: list[float]) -> results.BenchmarkResult:
    info = {"pass_medians": process_medians, "time": results.headline_time(process_medians)}
    return results.BenchmarkResult("b", "b", info, {"median": -1.0})


@pytest.mark.parametrize(("processes", "expected"), [(3, 0.75), (5, 1 - 2 / 2**5)])
def test_the_headline_interval_holds_the_true_median_as_often_as_it_can(
    processes: int, expected: float
) -> None:
    """Processes' medians drawn around a known median (20% noise between processes, as
    measured here): the bootstrap interval over so few processes is their range, which
    holds the median with probability 1 - 2 * 0.5**N (75% for 3, 94% for 5) - what the
    methodology says. An interval from quartiles, or from one process's rounds, would not."""
    rng = random.Random(1)
    true_median = 1e-3
    trials = 600
    held = 0
    for _ in range(trials):
        medians = [true_median * rng.lognormvariate(0, 0.2) for _ in range(processes)]
        headline = results.headline_time(medians)
        assert headline["processes"] == processes and headline["ci95"] is not None
        low, high = headline["ci95"]
        assert low <= headline["median"] <= high
        held += low <= true_median <= high
    assert held / trials == pytest.approx(expected, abs=0.06)


def test_one_process_has_no_interval_and_the_headline_is_what_tables_read() -> None:
    headline = results.headline_time([2e-3])
    assert headline == {"median": 2e-3, "ci95": None, "processes": 1}
    # BenchmarkResult.median reads the headline, not pytest-benchmark's median over rounds
    assert bench_of([1.0, 3.0, 2.0]).median == 2.0
    assert results.BenchmarkResult("b", "b", {}, {"median": 5.0}).median == 5.0


def test_a_ratio_of_one_runs_benchmarks_pairs_their_processes() -> None:
    """B takes 1.10x A's time; each process moves both by its own factor (25% noise). Paired
    by process the interval separates 1.10 from a tie; resampled apart, most of the time it
    cannot."""
    rng = random.Random(2)
    paired_clear = apart_clear = 0
    trials = 200
    for _ in range(trials):
        factors = [rng.lognormvariate(0, 0.25) for _ in range(5)]
        a = bench_of([1e-3 * f * rng.lognormvariate(0, 0.01) for f in factors])
        b = bench_of([1.1e-3 * f * rng.lognormvariate(0, 0.01) for f in factors])
        paired = results.ratio(b, a)
        assert paired.known and paired.low is not None and paired.high is not None
        paired_clear += paired.low > 1.0 and paired.low <= 1.1 <= paired.high
        # the same data with one process fewer on one side is resampled apart
        apart = results.ratio(bench_of(b.process_medians[:4]), a)
        assert apart.low is not None
        apart_clear += apart.low > 1.0
    assert paired_clear / trials >= 0.9
    assert apart_clear / trials <= 0.5
    assert not results.ratio(bench_of([1.0]), bench_of([2.0, 2.0])).known


def test_a_ratio_pairs_processes_by_pass_not_by_position() -> None:
    """A failed in pass 2 and B in pass 4 of five: both have four processes, and by position
    pass 3 of A would sit beside pass 2 of B. Each pass's process moved both alike here, so
    paired by pass the ratio is exactly 1.2; paired by position it would spread."""
    factors = [1.0, 1.5, 0.7, 1.3, 0.9]
    a_passes, b_passes = [1, 3, 4, 5], [1, 2, 3, 5]

    def bench(base: float, passes: list[int]) -> results.BenchmarkResult:
        medians = [base * factors[k - 1] for k in passes]
        info = {"pass_medians": medians, "pass_numbers": passes,
                "time": results.headline_time(medians)}  # fmt: skip
        return results.BenchmarkResult("x", "x", info, {"median": -1.0})

    value = results.ratio(bench(1.2, a_passes), bench(1.0, b_passes))
    assert value.low == pytest.approx(1.2) and value.high == pytest.approx(1.2)
