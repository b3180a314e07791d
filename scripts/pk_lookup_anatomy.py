"""Where the time of one primary-key select goes: raw driver, Core, statement building, ORM.

A maintainer's tool for "our numbers are far from the expected ones; find out why". It times,
in one run and interleaved so drift hits all alike, the same `SELECT ... WHERE id = ?` through:

- the raw psycopg driver;
- Core with a statement built once and executed with a new parameter each time;
- Core building the statement inline each time, as users write it (what `engines` measures);
- just building the statement and its cache key, without executing it;
- the ORM with a new Session per lookup (what `engines` measures).

Usage: python scripts/pk_lookup_anatomy.py [--postgres URL] [--rounds N]
(without --postgres it starts the embedded server).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

from sqlalchemy import bindparam, create_engine, select
from sqlalchemy.orm import Session

from sqlabench.backends import (
    POSTGRES_URL_ENV,
    REGISTRY,
    engine_options,
    postgres_target,
    raw_connect,
    sqlalchemy_url,
)
from sqlabench.database import prepare_postgres, seed
from sqlabench.models import DataSize, User

SIZE = DataSize(users=2_000, posts_per_user=1)
users = User.__table__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_URL_ENV))
    parser.add_argument("--rounds", type=int, default=3_000)
    args = parser.parse_args()
    backend = REGISTRY["psycopg"]
    with postgres_target(args.postgres) as target:
        version = prepare_postgres(target)
        seed(target, SIZE)
        engine = create_engine(sqlalchemy_url(backend, target), **engine_options(backend))
        raw = raw_connect(backend, target)
        conn = engine.connect()
        conn.begin()
        prebuilt = select(users).where(users.c.id == bindparam("uid"))
        raw_sql = (
            "SELECT users.id, users.name, users.email, users.is_active FROM users "
            "WHERE users.id = %s"
        )
        ids = iter(random.Random(1).choices(range(1, SIZE.users + 1), k=10_000_000))

        def build_only() -> object:
            stmt = select(users).where(users.c.id == next(ids))
            return stmt._generate_cache_key()

        def orm() -> object:
            with Session(conn) as session:
                return session.execute(
                    select(User).where(User.id == next(ids))
                ).scalar_one_or_none()

        paths: dict[str, Callable[[], object]] = {
            "raw psycopg": lambda: raw.execute(raw_sql, (next(ids),)).fetchone(),
            "core, statement built once": lambda: conn.execute(
                prebuilt, {"uid": next(ids)}
            ).one_or_none(),
            "core, statement built inline": lambda: conn.execute(
                select(users).where(users.c.id == next(ids))
            ).one_or_none(),
            "building statement + cache key only": build_only,
            "orm, Session per lookup": orm,
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for fn in paths.values():  # warm-up: prepared statements, compiled cache
            for _ in range(200):
                fn()
        clock = time.perf_counter
        for _ in range(args.rounds):
            for name, fn in paths.items():
                start = clock()
                fn()
                times[name].append(clock() - start)
        conn.close()
        raw.close()
        engine.dispose()
    print(f"PostgreSQL {version} at {target.display}; medians of {args.rounds} interleaved rounds")
    base = statistics.median(times["raw psycopg"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<38} {median * 1e6:8.1f} µs   {median / base:5.2f}× raw")


if __name__ == "__main__":
    main()
