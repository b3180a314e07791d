"""`sqlabench run --only`: an id selects exactly itself; else a -k expression over ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from sqlabench import selection

IDS = [
    "test_engines[sqlite-raw-pk_lookup]",
    "test_engines[sqlite-orm-pk_lookup]",
    "test_engines[asyncpg-orm-request-expire]",
    "test_bulk_insert[sqlite-raw_executemany-1000]",
    "test_bulk_insert[sqlite-raw_executemany-10000]",
    "test_pools[asyncpg-pool1+0-c16-timeout5ms]",
    "test_pools[asyncpg-pool1+0-c16]",
    "test_loading[psycopg-nested-selectinload-10x5]",
    "test_odd[a b(c)=d, 'e']",
    "test_odd[a b(c)=d, 'f']",
]


@pytest.mark.parametrize(
    "wanted",
    [
        [IDS[0]],
        [IDS[3]],  # not also ...-10000]
        [IDS[6]],  # not also the timeout5ms one, which it is a prefix of
        [IDS[1], IDS[2], IDS[5], IDS[7]],
        [IDS[8]],  # a space, parentheses, = and quotes: no -k expression can spell it
    ],
)
def test_ids_select_exactly_themselves(wanted: list[str]) -> None:
    assert selection.select(wanted, IDS) == (sorted(wanted, key=IDS.index), [])


def test_other_values_are_k_expressions_over_ids_alone() -> None:
    assert selection.select(["pools and not timeout"], IDS) == ([IDS[6]], [])
    assert selection.select(["SQLITE and PK_LOOKUP"], IDS) == (IDS[:2], [])  # any case
    # a module or marker name is not part of an id: -k would match it, --only does not
    assert selection.select(["engines.py"], IDS) == ([], ["engines.py"])


def test_values_that_select_nothing_are_reported_and_the_rest_kept() -> None:
    chosen, unknown = selection.select([IDS[0], "test_engines[nope]", "a b(", IDS[0]], IDS)
    assert chosen == [IDS[0]] and unknown == ["test_engines[nope]", "a b("]


def test_only_runs_exactly_the_ids_and_an_unknown_id_is_one_line(tmp_path: Path) -> None:
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "sqlite", "--out", str(tmp_path),
        "--only", "test_engines[sqlite-raw-pk_lookup]", "--only", "orm and pk_lookup",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("*.json")
    names = [b["name"] for b in json.loads(path.read_text())["benchmarks"]]
    assert names == ["test_engines[sqlite-orm-pk_lookup]", "test_engines[sqlite-raw-pk_lookup]"]

    out = tmp_path / "none"
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "sqlite", "--out", str(out),
        "--only", "test_engines[sqlite-raw-pk_lookup]",
        "--only", "test_engines[psycopg-raw-pk_lookup]",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("sqlabench: error: --only 'test_engines[psycopg-raw-pk_lookup]': no")
    assert "engines on sqlite" in line
    assert not out.exists()


def test_only_values_for_uncounted_benchmarks_leave_the_counting_pass_its_own(
    tmp_path: Path,
) -> None:
    """`--only nullpool` selects pools benchmarks alone, which are never counted: the counting
    process must still count the engines benchmark the other value selected."""
    done = run_cli(
        "run", "engines", "pools", "--profile", "smoke", "-b", "psycopg", "--out", str(tmp_path),
        "--only", "test_engines[psycopg-raw-pk_lookup]", "--only", "nullpool", "--instructions",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    by_name = {b["name"]: b for b in data["benchmarks"]}
    assert any("nullpool" in name for name in by_name)
    assert data["sqlabench"]["counting"]["error"] is None
    assert data["sqlabench"]["counting"]["benchmarks_counted"] == 1
    assert by_name["test_engines[psycopg-raw-pk_lookup]"]["extra_info"]["py_calls"] > 0
