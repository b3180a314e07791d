"""SQLite: a file per backend in the run's temporary directory, no server."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL

from sqlabench.families import Backend, Capabilities, Family, Target


@dataclass(frozen=True)
class SqliteTarget(Target):
    family_name: ClassVar[str] = "sqlite"
    path: Path

    @property
    def display(self) -> str:
        return f"sqlite file {self.path.name}"


class SqliteFamily(Family):
    name = "sqlite"
    title = "SQLite"
    order = 10
    dialects = ("sqlite",)
    capabilities = Capabilities(
        client_server=False,
        copy=False,
        returning=True,
        latency_proxy=False,
        server_cpu=False,
        bulk_ceiling="raw_executemany",
    )
    setup_backend = "sqlite"

    def target(self, server: Target | None, backend: Backend, workdir: Path) -> Target:
        return SqliteTarget(workdir / f"{backend.name}.db")

    def listing(self) -> str:
        return "temporary file"

    def version(self, target: Target | None) -> str:
        return sqlite3.sqlite_version

    def sqlalchemy_url(self, backend: Backend, target: Target) -> URL:
        assert isinstance(target, SqliteTarget)
        return URL.create(backend.dialect, database=str(target.path))


FAMILY = SqliteFamily()


def _connect(backend: Backend, target: Target) -> Any:
    assert isinstance(target, SqliteTarget)
    return sqlite3.connect(target.path)


async def _connect_async(backend: Backend, target: Target) -> Any:
    import aiosqlite

    assert isinstance(target, SqliteTarget)
    return await aiosqlite.connect(target.path)


def _library_version() -> str:
    return sqlite3.sqlite_version


_SETTINGS = {
    "isolation_level": "driver default (implicit BEGIN before DML)",
    "statement_cache": "sqlite3 default (128 per connection)",
    "row_type": "tuple",
}

DRIVERS = (
    Backend(
        "sqlite", "sqlite", "sync", "sqlite3", "sqlite3", "sqlite+pysqlite", "qmark",
        "SQLite file in a temporary directory, stdlib sqlite3 driver", _SETTINGS,
        connect=_connect, version=_library_version,
    ),
    Backend(
        "aiosqlite", "sqlite", "async", "aiosqlite", "aiosqlite", "sqlite+aiosqlite", "qmark",
        "SQLite file through aiosqlite (a worker thread per connection)", _SETTINGS,
        connect_async=_connect_async,
    ),
)  # fmt: skip
