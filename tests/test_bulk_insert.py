"""The bulk_insert question: every strategy verified by what landed, ratios to the ceiling."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from conftest import load_scenario, run_cli
from sqlabench.backends import REGISTRY, SqliteTarget
from sqlabench.database import seed, setup_engine
from sqlabench.measure import VerificationError
from sqlabench.models import BulkRow, DataSize, bulk_rows

bulk = load_scenario("bulk_insert")


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> Any:
    target = SqliteTarget(tmp_path / "bulk.db")
    seed(target, DataSize(users=0, posts_per_user=0))
    engine = setup_engine(target)
    yield engine
    engine.dispose()


def insert_rows(engine: Any, rows: list[tuple[Any, ...]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(BulkRow), [dict(zip(bulk.COLUMNS, r, strict=True)) for r in rows])


def case(strategy: str, rows: int = 50) -> Any:
    return bulk.Case(REGISTRY["sqlite"], strategy, rows)


def test_all_rows_pass(empty_sqlite: Any) -> None:
    source = bulk_rows(50)
    insert_rows(empty_sqlite, source)
    assert len(bulk.verify_contents(case("core_executemany"), empty_sqlite, source)) == 16


def test_a_strategy_that_drops_a_row_fails(empty_sqlite: Any) -> None:
    source = bulk_rows(50)
    insert_rows(empty_sqlite, source[:-1])
    with pytest.raises(VerificationError, match="holds 49 rows, not 50"):
        bulk.verify_contents(case("core_executemany"), empty_sqlite, source)


def test_a_strategy_that_changes_a_value_fails(empty_sqlite: Any) -> None:
    source = bulk_rows(50)
    insert_rows(empty_sqlite, [*source[:-1], (50, "row 50", -1, "note 50")])
    with pytest.raises(VerificationError, match="contents differ"):
        bulk.verify_contents(case("core_executemany"), empty_sqlite, source)


def test_generated_keys_are_checked_without_their_values(empty_sqlite: Any) -> None:
    source = bulk_rows(50)
    insert_rows(empty_sqlite, [(r[0] + 1000, *r[1:]) for r in source])
    bulk.verify_contents(case("orm_add_all_flush"), empty_sqlite, source)
    with pytest.raises(VerificationError):
        bulk.verify_contents(case("orm_bulk_insert"), empty_sqlite, source)


def test_per_row_strategies_are_skipped_above_the_limit_with_a_reason() -> None:
    assert case("orm_add_all_flush", 1_000_000).skip_reason
    assert case("raw_execute_loop", 1_000_000).skip_reason
    assert case("core_executemany", 1_000_000).skip_reason is None
    assert case("orm_add_all_flush", 100_000).skip_reason is None


def test_bulk_insert_end_to_end_verified_with_ratios(tmp_path: Path) -> None:
    done = run_cli(
        "run", "bulk_insert", "--profile", "smoke", "--out", str(tmp_path),
        "-b", "sqlite", "-b", "psycopg", "-b", "asyncpg",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    found: dict[str, set[str]] = defaultdict(set)
    ceiling: dict[str, float] = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        assert info["verified"] is True, b["name"]
        assert info["rows_per_s"] > 0 and info["peak_rss_mb"] > 0
        assert len(info["contents_checksum"]) == 16
        found[info["backend"]].add(info["strategy"])
        if info["ceiling"]:
            ceiling[info["backend"]] = info["rows_per_s"]
            assert info["ratio_to_ceiling"] == 1.0
    every = set(bulk.STRATEGIES) - {"copy"}
    assert found["sqlite"] == every
    assert found["psycopg"] == found["asyncpg"] == every | {"copy"}
    # the rates the benchmarks recorded, held to the rounds they timed (the last process's)
    medians = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        last = b["stats"]["data"][-info["pass_rounds"][-1] :]
        medians[b["name"]] = statistics.median(last)
        assert info["rows_per_s"] == pytest.approx(info["rows"] / medians[b["name"]], rel=1e-3)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        [ceiling_bench] = [
            c for c in data["benchmarks"] if c["extra_info"]["backend"] == info["backend"]
            and c["extra_info"]["ceiling"] and c["extra_info"]["rows"] == info["rows"]
        ]  # fmt: skip
        expected = medians[ceiling_bench["name"]] / medians[b["name"]]
        assert info["ratio_to_ceiling"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
        if info["strategy"] == "copy":
            assert info["statements"] == 1
        if info["strategy"] == "orm_insert_returning":
            assert info["statements"] == -(-info["rows"] // info["page_size"])
    assert "bulk_insert: rows per second" in done.stdout


def test_every_strategy_is_registered_for_every_mode_and_raw_api() -> None:
    """A strategy missing for one mode or driver API would fail only on that backend's run."""
    assert set(bulk.SYNC_STRATEGIES) == set(bulk.STRATEGIES)
    for strategy in bulk.STRATEGIES:
        for api in ("dbapi", "asyncpg"):
            assert (strategy, api) in bulk.ASYNC_STRATEGIES or (
                strategy,
                "any",
            ) in bulk.ASYNC_STRATEGIES, (strategy, api)
