"""The pools question: latency bookkeeping, timeouts counted as data, the max_connections guard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from conftest import load_scenario, run_cli
from sqlabench.backends import REGISTRY, PostgresTarget, engine_options, parse_postgres_url
from sqlabench.database import prepare_postgres, seed, setup_engine
from sqlabench.latency import injected_latency
from sqlabench.measure import StatementCounter
from sqlabench.models import DataSize
from sqlabench.scenario import async_engine, sync_engine

pools = load_scenario("pools")


def test_percentiles_are_ordered_and_in_milliseconds() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    p = pools.percentiles_ms(samples)
    # linear interpolation between the closest ranks, in ms: worked out by hand
    assert p == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0}
    assert pools.percentiles_ms([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}


def test_the_grid_runs_again_at_an_injected_rtt_unless_the_run_injects_one() -> None:
    backends = [REGISTRY["psycopg"], REGISTRY["sqlite"]]
    points = len(pools.PROFILES["quick"].points)
    plain = pools.cases(backends, "quick")
    assert [c.rtt_ms for c in plain] == [0.0] * points + [pools.RTT_MS] * points
    assert plain[points].id == plain[0].id + "-rtt2ms"
    assert len({c.id for c in plain}) == 2 * points
    # a run at --rtt-ms 1 runs the grid once, through the run's own path
    assert [c.rtt_ms for c in pools.cases(backends, "quick", run_rtt_ms=1.0)] == [0.0] * points


def test_connections_needed_per_point() -> None:
    assert pools.Point(5, 10, 64).connections_needed() == 15
    assert pools.Point(5, 10, 4).connections_needed() == 4
    assert pools.Point(None, 0, 16).connections_needed() == 16


def test_max_connections_guard() -> None:
    assert pools.connections_do_not_fit(10, in_use=5, max_connections=100, reserved=3) is None
    reason = pools.connections_do_not_fit(70, in_use=40, max_connections=100, reserved=3)
    assert reason and "needs up to 70 connections" in reason and "57 available" in reason


@pytest.fixture
def pools_database(scratch_database: str) -> Any:
    target = PostgresTarget(parse_postgres_url(scratch_database), embedded=False)
    prepare_postgres(target)
    seed(target, DataSize(users=16 * pools.IDS_PER_CLIENT, posts_per_user=0))
    return target


def test_server_limits_are_read_from_the_server(pools_database: PostgresTarget) -> None:
    engine = setup_engine(pools_database)
    in_use, max_connections, reserved = pools.server_limits(engine)
    engine.dispose()
    assert 1 <= in_use < max_connections and 0 <= reserved < max_connections


def test_checkout_timeouts_are_counted_not_raised(pools_database: PostgresTarget) -> None:
    point = pools.Point(1, 0, 8, pool_timeout=0.0005)
    with contextlib.ExitStack() as stack:
        engine = sync_engine(
            REGISTRY["psycopg"], pools_database, StatementCounter(), stack,
            **pools.pool_options(point),
        )  # fmt: skip
        load = pools.sync_load(engine, point, requests=10)
    assert load.errors == []
    assert load.timeouts > 0
    assert load.completed + load.timeouts == 8 * 10
    assert len(load.waits) == load.completed == len(load.latencies)
    assert all(w <= lat for w, lat in zip(load.waits, load.latencies, strict=True))


def test_client_cpu_counts_every_client_thread(pools_database: PostgresTarget) -> None:
    """Each statement burns 2 ms of CPU in whichever client thread runs it: the load's CPU
    time holds all of it (a measure of the calling thread alone would see a quarter)."""
    point = pools.Point(4, 0, 4)

    def burn(*_: object) -> None:
        until = time.thread_time() + 0.002
        while time.thread_time() < until:
            pass

    with contextlib.ExitStack() as stack:
        engine = sync_engine(
            REGISTRY["psycopg"], pools_database, StatementCounter(), stack,
            **pools.pool_options(point),
        )  # fmt: skip
        event.listen(engine, "before_cursor_execute", burn)
        load = pools.sync_load(engine, point, requests=5)
    assert load.errors == [] and load.completed == 20
    burnt = 20 * pools.STATEMENTS_PER_REQUEST * 0.002
    assert burnt <= load.cpu <= 2 * load.duration  # two cores at most


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_set_up_is_timed_apart_from_waiting(
    pools_database: PostgresTarget, mode: str
) -> None:
    """Through a 10 ms path a new connection costs the TCP handshake and the start-up
    exchange, two round trips: NullPool opens one per request and never waits for one, so
    every checkout is set-up, and none of it is counted as waiting."""
    point = pools.Point(None, 0, 4)
    with injected_latency(pools_database, 10.0) as path, contextlib.ExitStack() as stack:
        assert path is not None
        tally = pools.ConnectionTally()
        # no TLS negotiation: the set-up is then exactly the handshake and the start-up
        sync_args = {**engine_options(REGISTRY["psycopg"])["connect_args"], "sslmode": "disable"}
        options = {**pools.pool_options(point), "connect_args": sync_args}
        if mode == "sync":
            engine = sync_engine(
                REGISTRY["psycopg"], path.target, StatementCounter(), stack, **options
            )
            tally.attach(engine)
            load = pools.sync_load(engine, point, requests=3, tally=tally)
        else:
            options["connect_args"] = {
                **engine_options(REGISTRY["asyncpg"])["connect_args"],
                "ssl": False,
            }

            async def run() -> Any:
                async with contextlib.AsyncExitStack() as astack:
                    engine = await async_engine(
                        REGISTRY["asyncpg"], path.target, StatementCounter(), astack, **options
                    )
                    tally.attach(engine)
                    return await pools.async_load(engine, point, requests=3, tally=tally)

            load = asyncio.run(run())
    assert load.errors == [] and load.completed == 12
    assert len(load.setups) == 12
    assert min(load.setups) >= 2 * 0.010 * 0.95, load.setups
    # counted as waiting, each would be 20 ms or more
    assert max(load.waits) < 0.010, load.waits


def test_client_threads_start_before_the_timed_round(pools_database: PostgresTarget) -> None:
    point = pools.Point(2, 0, 8)
    counter = StatementCounter()
    with contextlib.ExitStack() as stack:
        engine = sync_engine(
            REGISTRY["psycopg"], pools_database, counter, stack, **pools.pool_options(point)
        )
        load = pools.SyncLoad(engine, point, requests=2)
        before = threading.active_count()
        load.prepare()
        # every client is up and waiting, and none has sent a statement
        assert threading.active_count() == before + 8
        time.sleep(0.2)
        assert counter.count == 0
        done = load.run()
        assert counter.count == 16 * pools.STATEMENTS_PER_REQUEST
    assert done.errors == [] and done.completed == 16
    assert threading.active_count() == before


def test_server_cpu_sees_a_backend_working(pools_database: PostgresTarget) -> None:
    """A query that keeps one backend busy for about a second uses about one core of the
    server's, which the client process did not spend."""
    admin = setup_engine(pools_database)
    try:
        server = pools.ServerCpu(admin)
        if server.postmaster is None:
            pytest.skip("the server's processes are not visible here (not local, or no /proc)")
        with admin.connect() as conn:
            server.sample()
            client = time.process_time()
            conn.exec_driver_sql("SELECT count(*) FROM generate_series(1, 8000000)").scalar()
            server.sample()
            client = time.process_time() - client
    finally:
        admin.dispose()
    cores = server.cores(skip=0)
    # about one core; at least a third of one even on a machine busy with other work
    assert cores is not None and 0.3 <= cores <= 1.3, cores
    assert client < 0.1


def test_pools_end_to_end(tmp_path: Path) -> None:
    done = run_cli(
        "run", "pools", "--profile", "smoke", "--out", str(tmp_path),
        "-b", "psycopg", "-b", "asyncpg", "-b", "sqlite",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert {b["extra_info"]["backend"] for b in data["benchmarks"]} == {"psycopg", "asyncpg"}
    by_rtt = {rtt: [b for b in data["benchmarks"] if b["extra_info"]["rtt_ms"] == rtt]
              for rtt in (0, pools.RTT_MS)}  # fmt: skip
    assert len(by_rtt[0]) == len(by_rtt[pools.RTT_MS]) == len(data["benchmarks"]) // 2
    for b in by_rtt[0]:
        assert "rtt_seen_ms" not in b["extra_info"], b["name"]
    for b in by_rtt[pools.RTT_MS]:
        info = b["extra_info"]
        assert b["name"].endswith("-rtt2ms]")
        assert info["rtt_seen_ms"]["p50"] == pytest.approx(pools.RTT_MS, rel=0.25), b["name"]
        if info["pool_class"] == "NullPool":
            # every request opens a connection: a handshake and a start-up at least
            assert info["connect_ms"]["count"] == info["completed"]
            assert info["connect_ms"]["p50"] >= 2 * pools.RTT_MS * 0.95, b["name"]
    timeouts_seen = False
    for b in data["benchmarks"]:
        info = b["extra_info"]
        assert info["verified"] is True, b["name"]
        lat = info["latency_ms"]
        # each of a request's statements is a round trip: through the 2 ms path the median
        # request cannot take less than that many RTTs (latency measured per request, in ms)
        floor = pools.STATEMENTS_PER_REQUEST * info["rtt_ms"] * 0.95
        assert max(floor, 0.0) < lat["p50"], (b["name"], lat)
        assert info["throughput_rps"] > 0 and info["connections"] >= 1
        assert 0 < info["client_cpu"] <= os.cpu_count()
        # the test's servers run here, where their processes can be read (in 10 ms clock
        # ticks: a smoke round can be shorter than one)
        assert 0 <= info["server_cpu"] <= os.cpu_count(), b["name"]
        if info["pool_class"] == "QueuePool" and info["pool_size"] >= info["concurrency"]:
            # a connection for every client: nobody waits for one longer than a request takes
            assert info["pool_wait_ms"]["p99"] < lat["p50"], (b["name"], info["pool_wait_ms"])
        if info["pool_class"] == "QueuePool" and info["pool_timeout"] >= 30:
            assert info["timeouts"] == 0
            assert info["connections"] <= info["pool_size"] + info["max_overflow"]
        timeouts_seen |= info["timeouts"] > 0
    assert timeouts_seen, "the short-timeout point should run out of connections"
    assert "pools: the smallest pool within the noise of the best" in done.stdout
