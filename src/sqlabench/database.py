"""Preparing a database for a run: reachability, the owned schema, tables and seed data.

On PostgreSQL the suite only ever works inside the schema it owns (`sqlabench`), marked by a
comment. It refuses a same-named schema without that mark, and it never names an object outside
the schema: connections run with `search_path=sqlabench` and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.exc import DBAPIError

from sqlabench.backends import (
    REGISTRY,
    SCHEMA,
    PostgresTarget,
    SqliteTarget,
    Target,
    engine_options,
    sqlalchemy_url,
)
from sqlabench.errors import SqlabenchError
from sqlabench.models import (
    Address,
    Base,
    Comment,
    DataSize,
    Post,
    User,
    iter_addresses,
    iter_comments,
    iter_posts,
    iter_users,
)

SCHEMA_MARKER = "sqlabench: made and owned by the sqlabench benchmark suite"
RUN_LOCK_KEY = 0x5A1AB3AC  # advisory lock key; advisory locks are per database
MIN_POSTGRES_VERSION = 120000
SEED_BATCH = 5000


def setup_engine(target: Target) -> Engine:
    """A sync engine for setup and verification (never timed)."""
    backend = REGISTRY["sqlite" if isinstance(target, SqliteTarget) else "psycopg"]
    return create_engine(sqlalchemy_url(backend, target), **engine_options(backend))


def _describe_connect_error(target: PostgresTarget, exc: BaseException) -> str:
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return f"cannot connect to PostgreSQL at {target.display}: {target.mask(detail)}"


def prepare_postgres(target: PostgresTarget) -> str:
    """Check the server and make sure the owned schema exists; return the server version."""
    from sqlalchemy.engine import Connection

    engine = setup_engine(target)
    try:
        with engine.connect() as conn:
            assert isinstance(conn, Connection)
            version_num = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            version = str(conn.execute(text("SHOW server_version")).scalar_one())
            check_server_version(version_num, version, target.display)
            _ensure_owned_schema(conn)
            conn.commit()
    except DBAPIError as exc:
        raise SqlabenchError(_describe_connect_error(target, exc)) from None
    finally:
        engine.dispose()
    return version


def check_server_version(version_num: int, version: str, where: str) -> None:
    """PostgreSQL 12 or newer (generated columns, RETURNING everywhere SQLAlchemy needs)."""
    if version_num < MIN_POSTGRES_VERSION:
        raise SqlabenchError(f"PostgreSQL {version} at {where} is too old (need 12 or newer)")


def _ensure_owned_schema(conn: Any) -> None:
    comment = conn.execute(
        text("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = :s"),
        {"s": SCHEMA},
    ).first()
    if comment is None:
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(text(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_MARKER}'"))
    elif comment[0] != SCHEMA_MARKER:
        raise SqlabenchError(
            f"a schema named {SCHEMA!r} already exists and was not made by sqlabench; "
            "refusing to touch it (drop or rename it, or use another database)"
        )
    current = conn.execute(text("SELECT current_schema()")).scalar_one()
    if current != SCHEMA:
        raise SqlabenchError(
            f"connections do not resolve names in schema {SCHEMA!r} (current schema: "
            f"{current!r}); refusing to create tables anywhere else"
        )


def _reset_owned_schema(conn: Any) -> None:
    """Empty the suite's own schema: whatever an older or newer sqlabench left there goes."""
    _ensure_owned_schema(conn)
    conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))
    conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    conn.execute(text(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_MARKER}'"))


@contextlib.contextmanager
def exclusive_use(target: PostgresTarget) -> Iterator[None]:
    """Hold the database's sqlabench lock for a run: two runs would re-seed under each other."""
    import psycopg

    try:
        conn = psycopg.connect(target.dsn(), autocommit=True)
    except psycopg.Error as exc:
        raise SqlabenchError(_describe_connect_error(target, exc)) from None
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()
        if not (got and got[0]):
            raise SqlabenchError(
                f"another sqlabench run is using the database at {target.display}; "
                "wait for it to finish (runs on one database cannot share it)"
            )
        yield
    finally:
        conn.close()  # closing the session releases the lock


def seed(target: Target, size: DataSize) -> None:
    """Recreate the suite's tables in its own schema and fill them with the seeded data."""
    engine = setup_engine(target)
    try:
        with engine.begin() as conn:
            if isinstance(target, PostgresTarget):
                _reset_owned_schema(conn)
            else:
                Base.metadata.drop_all(conn)
            Base.metadata.create_all(conn)
            _insert_batches(conn, User, iter_users(size), ("id", "name", "email", "is_active"))
            _insert_batches(conn, Post, iter_posts(size), ("id", "title", "author_id"))
            _insert_batches(conn, Comment, iter_comments(size), ("id", "body", "post_id"))
            _insert_batches(conn, Address, iter_addresses(size), ("id", "email", "user_id"))
        with engine.connect() as conn:
            # fresh statistics, so the planner sees the seeded sizes and not empty tables
            for table in Base.metadata.sorted_tables:
                conn.execute(text(f"ANALYZE {table.name}"))
            conn.commit()
    finally:
        engine.dispose()


def _insert_batches(conn: Any, model: type[Base], rows: Any, columns: tuple[str, ...]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= SEED_BATCH:
            conn.execute(insert(model), batch)
            batch = []
    if batch:
        conn.execute(insert(model), batch)
