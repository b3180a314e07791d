"""Backends are data: one registry entry per driver, plus where its database lives.

A backend names a server kind, a driver and a mode. Everything that differs between drivers
(URL, connect arguments, paramstyle, the raw-driver connect call, version probes) is looked up
here, so adding a driver is adding an entry.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from sqlabench.embedded import POSTGRES_URL_ENV as POSTGRES_URL_ENV
from sqlabench.embedded import embedded_server, provenance
from sqlabench.errors import SqlabenchError
from sqlabench.masking import mask_text, mask_url, url_secrets

SCHEMA = "sqlabench"
"""Every object the suite makes on PostgreSQL lives in this schema, which it owns."""


ServerKind = Literal["sqlite", "postgresql"]
Mode = Literal["sync", "async"]

# Driver settings that change speed, set explicitly and identically for the raw layer and the
# SQLAlchemy layers so the comparison is like for like. They are recorded in every result.
PSYCOPG_PREPARE_THRESHOLD = 5  # psycopg's own default, made explicit
ASYNCPG_STATEMENT_CACHE = 100  # asyncpg's default; SQLAlchemy's asyncpg dialect default too


@dataclass(frozen=True)
class Backend:
    name: str
    server: ServerKind
    mode: Mode
    driver: str
    """Import name of the driver module."""
    distribution: str
    """PyPI distribution whose version is recorded."""
    dialect: str
    """SQLAlchemy drivername for URLs."""
    paramstyle: Literal["qmark", "format", "numeric"]
    description: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def is_async(self) -> bool:
        return self.mode == "async"

    def driver_installed(self) -> bool:
        return self.driver_problem() is None

    def driver_problem(self) -> str | None:
        """Why the driver cannot be used here (it must import, not only be found), or None."""
        try:
            importlib.import_module(self.driver)
        except ImportError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def driver_version(self) -> str:
        if self.driver == "sqlite3":
            return sqlite3.sqlite_version
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"


_SQLITE_SETTINGS = {
    "isolation_level": "driver default (implicit BEGIN before DML)",
    "statement_cache": "sqlite3 default (128 per connection)",
    "row_type": "tuple",
}
_PSYCOPG_SETTINGS = {
    "prepare_threshold": PSYCOPG_PREPARE_THRESHOLD,
    "autocommit": False,
    "row_type": "tuple",
}
_ASYNCPG_SETTINGS = {
    "prepared_statements": f"cached, {ASYNCPG_STATEMENT_CACHE} per connection",
    "transaction": "explicit, as SQLAlchemy's asyncpg dialect opens one",
    "row_type": "Record",
}

REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "sqlite", "sqlite", "sync", "sqlite3", "sqlite3", "sqlite+pysqlite", "qmark",
            "SQLite file in a temporary directory, stdlib sqlite3 driver", _SQLITE_SETTINGS,
        ),
        Backend(
            "aiosqlite", "sqlite", "async", "aiosqlite", "aiosqlite", "sqlite+aiosqlite", "qmark",
            "SQLite file through aiosqlite (a worker thread per connection)", _SQLITE_SETTINGS,
        ),
        Backend(
            "psycopg", "postgresql", "sync", "psycopg", "psycopg", "postgresql+psycopg", "format",
            "PostgreSQL through psycopg 3, sync", _PSYCOPG_SETTINGS,
        ),
        Backend(
            "psycopg_async", "postgresql", "async", "psycopg", "psycopg",
            "postgresql+psycopg_async", "format",
            "PostgreSQL through psycopg 3, asyncio", _PSYCOPG_SETTINGS,
        ),
        Backend(
            "asyncpg", "postgresql", "async", "asyncpg", "asyncpg", "postgresql+asyncpg", "numeric",
            "PostgreSQL through asyncpg", _ASYNCPG_SETTINGS,
        ),
    )
}  # fmt: skip

DEFAULT_BACKENDS: tuple[str, ...] = tuple(REGISTRY)


def get_backend(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SqlabenchError(
            f"unknown backend {name!r} (choose from: {', '.join(REGISTRY)})"
        ) from None


def resolve_backends(names: tuple[str, ...] | list[str]) -> list[Backend]:
    """Backends for the given names (all of them when empty), in registry order, deduplicated."""
    wanted = {get_backend(n).name for n in names} if names else set(REGISTRY)
    chosen = [b for b in REGISTRY.values() if b.name in wanted]
    for backend in chosen:
        problem = backend.driver_problem()
        if problem:
            raise SqlabenchError(
                f"backend {backend.name!r} needs the driver package {backend.distribution!r}, "
                f"which cannot be imported here ({problem}); pip install it, or choose "
                "another --backend"
            )
    return chosen


# --- where the databases live -------------------------------------------------------------


@dataclass(frozen=True)
class SqliteTarget:
    path: Path

    @property
    def display(self) -> str:
        return f"sqlite file {self.path.name}"


@dataclass(frozen=True)
class PostgresTarget:
    url: URL
    """A plain postgresql:// URL; it may hold a password, so it is never printed as is."""
    embedded: bool

    @property
    def display(self) -> str:
        return mask_url(self.url) + (f" (embedded: {provenance()})" if self.embedded else "")

    def dsn(self) -> str:
        """The URL as a libpq/asyncpg DSN, query parameters included (holds the password)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def mask(self, text: str) -> str:
        return mask_text(text, *url_secrets(self.url))


Target = SqliteTarget | PostgresTarget


def parse_postgres_url(raw: str) -> URL:
    """A user-given PostgreSQL URL as a plain postgresql:// URL, or a one-line error."""
    try:
        url = make_url(raw)
        url.port  # noqa: B018  (a port that is not a number fails here)
    except (ArgumentError, ValueError):
        raise SqlabenchError(f"not a database URL: {mask_text(raw)!r}") from None
    if url.get_backend_name() != "postgresql":
        raise SqlabenchError(f"not a PostgreSQL URL: {mask_url(url)!r}")
    if not url.database:
        raise SqlabenchError(f"the PostgreSQL URL names no database: {mask_url(url)!r}")
    return url.set(drivername="postgresql")


@contextlib.contextmanager
def postgres_target(url: str | None) -> Iterator[PostgresTarget]:
    """The server named by `url`, or else an embedded one started here and stopped on exit."""
    if url:
        yield PostgresTarget(parse_postgres_url(url), embedded=False)
        return
    with embedded_server() as embedded_url:
        yield PostgresTarget(make_url(embedded_url), embedded=True)


# --- connecting ---------------------------------------------------------------------------


def sqlalchemy_url(backend: Backend, target: Target) -> URL:
    if isinstance(target, SqliteTarget):
        return URL.create(backend.dialect, database=str(target.path))
    return target.url.set(drivername=backend.dialect)


def connect_args(backend: Backend) -> dict[str, Any]:
    """Connect arguments shared by the raw and the SQLAlchemy layers of a backend."""
    if backend.driver == "psycopg":
        return {
            "options": f"-c search_path={SCHEMA}",
            "prepare_threshold": PSYCOPG_PREPARE_THRESHOLD,
        }
    if backend.driver == "asyncpg":
        return {"server_settings": {"search_path": SCHEMA}}
    return {}


def engine_options(backend: Backend) -> dict[str, Any]:
    options: dict[str, Any] = {"connect_args": connect_args(backend)}
    if backend.driver == "asyncpg":
        options["connect_args"] = {
            **options["connect_args"],
            "prepared_statement_cache_size": ASYNCPG_STATEMENT_CACHE,
        }
    return options


def raw_connect(backend: Backend, target: Target) -> Any:
    """A sync raw driver connection (no SQLAlchemy), configured as the SQLAlchemy layers are."""
    if backend.driver == "sqlite3":
        assert isinstance(target, SqliteTarget)
        return sqlite3.connect(target.path)
    if backend.driver == "psycopg":
        import psycopg

        assert isinstance(target, PostgresTarget)
        return psycopg.connect(target.dsn(), **connect_args(backend))
    raise ValueError(f"{backend.name} is not a sync backend")


async def raw_connect_async(backend: Backend, target: Target) -> Any:
    """An async raw driver connection (no SQLAlchemy), configured as the SQLAlchemy layers are."""
    if backend.driver == "aiosqlite":
        import aiosqlite

        assert isinstance(target, SqliteTarget)
        return await aiosqlite.connect(target.path)
    if backend.driver == "psycopg":
        import psycopg

        assert isinstance(target, PostgresTarget)
        return await psycopg.AsyncConnection.connect(target.dsn(), **connect_args(backend))
    if backend.driver == "asyncpg":
        import asyncpg

        assert isinstance(target, PostgresTarget)
        return await asyncpg.connect(
            target.dsn(),
            statement_cache_size=ASYNCPG_STATEMENT_CACHE,
            **connect_args(backend),
        )
    raise ValueError(f"{backend.name} is not an async backend")


def placeholders(backend: Backend, sql: str) -> str:
    """SQL written with `{}` for each parameter, in the backend's paramstyle."""
    count = sql.count("{}")
    if backend.paramstyle == "qmark":
        marks = ["?"] * count
    elif backend.paramstyle == "format":
        marks = ["%s"] * count
    else:
        marks = [f"${i + 1}" for i in range(count)]
    return sql.format(*marks)
