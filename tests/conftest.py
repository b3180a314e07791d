"""Shared fixtures: running the CLI as a user does, and PostgreSQL servers to run against."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.engine import URL, make_url

from sqlabench.embedded import POSTGRES_URL_ENV, embedded_server

if TYPE_CHECKING:
    import psycopg

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


def _connect(url: URL, database: str | None) -> psycopg.Connection[Any]:
    import psycopg

    host = url.host or url.query.get("host")
    assert not isinstance(host, tuple), "one host, not several"
    return psycopg.connect(
        host=host, port=url.port, user=url.username, password=url.password or None,
        dbname=database, autocommit=True,
    )  # fmt: skip


@pytest.fixture
def pg_connect() -> Callable[[str], psycopg.Connection[Any]]:
    """Open an autocommit psycopg connection to a database URL (for setting up and checking)."""

    def connect(url_string: str) -> psycopg.Connection[Any]:
        url = make_url(url_string)
        return _connect(url, url.database)

    return connect
