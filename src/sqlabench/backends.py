"""Backends are data: one registry entry per driver, each of a database family.

A backend names a family (its `server`), a driver and a mode. Everything that differs between
drivers (connect arguments, paramstyle, the raw-driver connect call) is in its entry, and
everything that differs between database products (where the database lives, URLs, schema
ownership, capabilities) in its family's module under `sqlabench.families`. Adding a driver is
adding an entry there; this module gathers them and connects through them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from sqlabench.embedded import POSTGRES_URL_ENV as POSTGRES_URL_ENV
from sqlabench.errors import SqlabenchError
from sqlabench.families import Backend as Backend
from sqlabench.families import Mode as Mode
from sqlabench.families import Target as Target
from sqlabench.families import drivers
from sqlabench.families.postgresql import ASYNCPG_STATEMENT_CACHE as ASYNCPG_STATEMENT_CACHE
from sqlabench.families.postgresql import PSYCOPG_PREPARE_THRESHOLD as PSYCOPG_PREPARE_THRESHOLD
from sqlabench.families.postgresql import SCHEMA as SCHEMA
from sqlabench.families.postgresql import PostgresTarget as PostgresTarget
from sqlabench.families.postgresql import parse_postgres_url as parse_postgres_url
from sqlabench.families.postgresql import postgres_target as postgres_target
from sqlabench.families.sqlite import SqliteTarget as SqliteTarget

REGISTRY: dict[str, Backend] = {b.name: b for b in drivers()}

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


# --- connecting ---------------------------------------------------------------------------


def sqlalchemy_url(backend: Backend, target: Target) -> URL:
    return backend.family.sqlalchemy_url(backend, target)


def connect_args(backend: Backend) -> dict[str, Any]:
    """Connect arguments shared by the raw and the SQLAlchemy layers of a backend."""
    return dict(backend.connect_args)


def engine_options(backend: Backend) -> dict[str, Any]:
    return backend.family.engine_options(backend)


def raw_connect(backend: Backend, target: Target) -> Any:
    """A sync raw driver connection (no SQLAlchemy), configured as the SQLAlchemy layers are."""
    return backend.connect(backend, target)


async def raw_connect_async(backend: Backend, target: Target) -> Any:
    """An async raw driver connection (no SQLAlchemy), configured as the SQLAlchemy layers are."""
    return await backend.connect_async(backend, target)


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
