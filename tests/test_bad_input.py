"""The rest of the bad-input table: a wrong password, a missing database, a missing driver, a
server too old, and a server that dies in the middle of a run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT, run_cli
from sqlabench.backends import POSTGRES_URL_ENV
from sqlabench.database import check_server_version
from sqlabench.embedded import embedded_server
from sqlabench.errors import SqlabenchError


def one_line_exit_2(done: subprocess.CompletedProcess[str], contains: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and contains in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


@contextlib.contextmanager
def private_server(directory: Path) -> Iterator[str]:
    """The URL of a PostgreSQL of this test's own (the tests may change its auth or kill it)."""
    with embedded_server(directory, delete=True) as url:
        yield url


def sql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(make_url(url).render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(statement)


def postmaster_pid(directory: Path) -> int:
    return int((directory / "postmaster.pid").read_text().split()[0])


def test_wrong_password(tmp_path: Path) -> None:
    with private_server(tmp_path / "pg") as server:
        sql(server, "CREATE ROLE alice LOGIN PASSWORD 'right-pw-123'")
        hba = tmp_path / "pg" / "pg_hba.conf"
        hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")
        sql(server, "SELECT pg_reload_conf()")
        url = make_url(server).set(username="alice", password="wrong-pw-456")
        done = run_cli(
            "run", "engines", "-b", "psycopg", "--out", str(tmp_path / "out"),
            "--postgres", url.render_as_string(hide_password=False),
        )  # fmt: skip
    line = one_line_exit_2(done, "cannot connect to PostgreSQL")
    assert "password authentication failed" in line
    assert "wrong-pw-456" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def test_missing_database(postgres_url: str, tmp_path: Path) -> None:
    url = make_url(postgres_url).set(database="sqlabench_no_such_db")
    done = run_cli(
        "run", "engines", "-b", "psycopg", "--out", str(tmp_path / "out"),
        "--postgres", url.render_as_string(hide_password=False),
    )  # fmt: skip
    line = one_line_exit_2(done, "cannot connect to PostgreSQL")
    assert 'database "sqlabench_no_such_db" does not exist' in line
    assert not (tmp_path / "out").exists()


def test_missing_driver_package(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "asyncpg"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('asyncpg is not installed (test shim)')\n")
    env = {"PYTHONPATH": f"{tmp_path / 'shim'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = run_cli("run", "engines", "-b", "asyncpg", "--out", str(tmp_path / "out"), env=env)
    line = one_line_exit_2(done, "backend 'asyncpg' needs the driver package 'asyncpg'")
    assert "cannot be imported here" in line
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "no: pip install asyncpg" in listed.stdout


def test_server_too_old() -> None:
    check_server_version(120000, "12.0", "here")
    with pytest.raises(SqlabenchError, match=r"PostgreSQL 11\.22 at here is too old"):
        check_server_version(110022, "11.22", "here")


def test_a_server_that_dies_mid_run_fails_its_benchmarks_and_the_run(tmp_path: Path) -> None:
    with private_server(tmp_path / "pg") as server:
        env = {k: v for k, v in os.environ.items() if k != POSTGRES_URL_ENV}
        process = subprocess.Popen(
            [sys.executable, "-m", "sqlabench", "run", "engines", "--profile", "smoke",
             "-b", "sqlite", "-b", "psycopg", "-b", "asyncpg", "--out", str(tmp_path / "out"),
             "--postgres", server],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen.append(line)
            if "psycopg-orm-pk_lookup" in line or not line:
                break
        # immediate shutdown, as a crash or an operator's kill would leave it
        os.kill(postmaster_pid(tmp_path / "pg"), signal.SIGQUIT)
        _, rest = process.communicate(timeout=300)
    assert process.returncode == 1, "".join(seen) + rest
    assert "Traceback" not in rest
    [path] = (tmp_path / "out").glob("*.json")
    data = json.loads(path.read_text())
    failed = {f["benchmark"] for f in data["sqlabench"]["failures"]}
    assert any("asyncpg" in name for name in failed)
    assert not any("sqlite" in name for name in failed)
    sqlite = [b for b in data["benchmarks"] if b["extra_info"]["backend"] == "sqlite"]
    assert len(sqlite) == 16 and all(b["extra_info"]["verified"] for b in sqlite)


def test_the_soak_script_runs_and_reports(scratch_database: str) -> None:
    done = subprocess.run(
        [sys.executable, "scripts/soak.py", "--seconds", "3", "--clients", "8",
         "--pool-size", "4", "--max-overflow", "2", "--sample-every", "0.5",
         "--postgres", scratch_database],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "every connection returned" in done.stdout, done.stdout + done.stderr
    assert "server connections: min" in done.stdout
    assert done.returncode in (0, 1)  # 1 only if memory grew in 3 seconds of warm-up
