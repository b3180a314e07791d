"""Why do pools of 10-20 show a p99 of seconds at 64 clients when NullPool shows 0.5 s?

Runs the pools question's closed loop (threads on a sync psycopg engine) at 64 clients for
NullPool and QueuePools of 10 and 20, and prints each one's checkout waits (connection set-up
not included): their median, p99 and mean, and the share of checkouts that did not wait at
all. With more clients than connections someone is always waiting; a fair (first come, first
served) queue spreads that wait over every checkout, an unfair one (the thread that returns a
connection takes it straight back while others sleep) leaves most checkouts at zero and a few
at seconds.

Usage: python scripts/pool_fairness.py [--postgres URL] [--clients 64] [--requests 30]
       (no URL: the embedded server)
"""

from __future__ import annotations

import argparse
import contextlib
import os

import numpy as np

from sqlabench.backends import POSTGRES_URL_ENV, REGISTRY, postgres_target
from sqlabench.database import exclusive_use, prepare_postgres, seed
from sqlabench.measure import StatementCounter
from sqlabench.models import DataSize
from sqlabench.questions import pools
from sqlabench.scenario import sync_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_URL_ENV))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with postgres_target(args.postgres) as target, exclusive_use(target):
        prepare_postgres(target)
        seed(target, DataSize(users=args.clients * pools.IDS_PER_CLIENT, posts_per_user=0))
        print("pool      req/s  wait p50 ms  wait p99 ms  mean wait ms  zero waits  client cores")
        for size in (None, 10, 20):
            point = pools.Point(size, 0, args.clients)
            with contextlib.ExitStack() as stack:
                engine = sync_engine(
                    REGISTRY["psycopg"], target, StatementCounter(), stack,
                    **pools.pool_options(point),
                )  # fmt: skip
                tally = pools.ConnectionTally()
                tally.attach(engine)
                pools.sync_load(engine, point, 5, tally)  # warm-up: the pool fills
                load = pools.sync_load(engine, point, args.requests, tally)
            assert not load.errors, load.errors
            rate = load.completed / load.duration
            waits = np.asarray(load.waits) * 1e3
            print(
                f"{'NullPool' if size is None else size:<8} {rate:6.0f} "
                f"{np.percentile(waits, 50):12.1f} {np.percentile(waits, 99):12.1f} "
                f"{waits.mean():13.1f} "
                f"{np.mean(waits < 0.5):10.0%} {load.cpu / load.duration:13.2f}"
            )


if __name__ == "__main__":
    main()
