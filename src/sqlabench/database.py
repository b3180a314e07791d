"""Preparing a database for a run: reachability, the owned space, tables and seed data.

What differs between database families (checking the server, the schema the suite owns on
PostgreSQL and how it is emptied, the run's lock) is the family's (`sqlabench.families`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, insert

from sqlabench.families import Target
from sqlabench.families import setup_engine as _setup_engine
from sqlabench.families.postgresql import MIN_POSTGRES_VERSION as MIN_POSTGRES_VERSION
from sqlabench.families.postgresql import RUN_LOCK_KEY as RUN_LOCK_KEY
from sqlabench.families.postgresql import SCHEMA_MARKER as SCHEMA_MARKER
from sqlabench.families.postgresql import check_server_version as check_server_version
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

SEED_BATCH = 5000


def setup_engine(target: Target) -> Engine:
    """A sync engine for setup and verification (never timed)."""
    engine: Engine = _setup_engine(target)
    return engine


def prepare(server: Target) -> str:
    """Check the server and make the space the suite owns in it; return the server version."""
    return server.family.prepare(server)


prepare_postgres = prepare


@contextlib.contextmanager
def exclusive_use(server: Target) -> Iterator[None]:
    """Hold the database's sqlabench lock for a run: two runs would re-seed under each other."""
    with server.family.exclusive_use(server):
        yield


def seed(target: Target, size: DataSize) -> None:
    """Recreate the suite's tables in its own schema and fill them with the seeded data."""
    engine = setup_engine(target)
    try:
        with engine.begin() as conn:
            target.family.reset(conn, Base.metadata)
            Base.metadata.create_all(conn)
            _insert_batches(conn, User, iter_users(size), ("id", "name", "email", "is_active"))
            _insert_batches(conn, Post, iter_posts(size), ("id", "title", "author_id"))
            _insert_batches(conn, Comment, iter_comments(size), ("id", "body", "post_id"))
            _insert_batches(conn, Address, iter_addresses(size), ("id", "email", "user_id"))
        with engine.connect() as conn:
            # fresh statistics, so the planner sees the seeded sizes and not empty tables
            target.family.refresh_statistics(conn, [t.name for t in Base.metadata.sorted_tables])
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
