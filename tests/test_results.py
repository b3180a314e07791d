import json
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
