"""Shared fixtures: running the CLI as a user does, and PostgreSQL servers to run against."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import make_url

from sqlabench.embedded import POSTGRES_URL_ENV, embedded_server

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `sqlabench ARGS` in a subprocess, as a user would, and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if k != POSTGRES_URL_ENV}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sqlabench", *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def load_scenario(question: str) -> ModuleType:
    """A question module of the package."""
    return importlib.import_module(f"sqlabench.questions.{question}")


def load_script(name: str) -> ModuleType:
    """A script from scripts/, imported by path so its functions can be tested."""
    return _load_module(name, ROOT / "scripts" / f"{name}.py")


def _load_module(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[str]:
    """A URL of the embedded PostgreSQL the suite uses (started for the tests if needed)."""
    with embedded_server() as url:
        yield url


def _postgres_servers() -> list[str]:
    servers = ["embedded"]
    if os.environ.get(POSTGRES_URL_ENV):
        servers.append("system")
    return servers


@pytest.fixture(scope="session", params=_postgres_servers())
def postgres_url(request: pytest.FixtureRequest) -> str:
    """Each PostgreSQL server the tests cover: the embedded one, and $SQLABENCH_POSTGRES_URL."""
    if request.param == "embedded":
        return str(request.getfixturevalue("embedded_postgres"))
    return os.environ[POSTGRES_URL_ENV]


@pytest.fixture
def scratch_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards: for tests that must not share."""
    url = make_url(postgres_url)
    name = f"sqlabench_test_{uuid.uuid4().hex[:10]}"
    admin = _connect(url, url.database)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _connect(url, database):  # type: ignore[no-untyped-def]
    import psycopg

    host = url.host or url.query.get("host")
    return psycopg.connect(
        host=host, port=url.port, user=url.username, password=url.password or None,
        dbname=database, autocommit=True,
    )  # fmt: skip


@pytest.fixture
def pg_connect():  # type: ignore[no-untyped-def]
    """Open an autocommit psycopg connection to a database URL (for setting up and checking)."""

    def connect(url_string: str):  # type: ignore[no-untyped-def]
        url = make_url(url_string)
        return _connect(url, url.database)

    return connect
