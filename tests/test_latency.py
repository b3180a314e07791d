"""Injected latency: the proxy really delays each round trip, and bad values are refused."""

from __future__ import annotations

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from conftest import run_cli
from sqlabench.backends import PostgresTarget, Target, parse_postgres_url
from sqlabench.errors import SqlabenchError
from sqlabench.latency import (
    TOLERANCE,
    LatencyProxy,
    check_rtt,
    injected_latency,
    upstream_of,
)


def postgres(target: Target) -> PostgresTarget:
    """The latency proxy only stands in front of PostgreSQL."""
    assert isinstance(target, PostgresTarget)
    return target


def test_rtt_must_be_a_sane_number() -> None:
    assert check_rtt(0) == 0 and check_rtt(2.5) == 2.5
    for bad in (-1, -0.1, 10_000):
        with pytest.raises(SqlabenchError, match="--rtt-ms must be between 0 and"):
            check_rtt(bad)


def test_upstream_is_the_socket_or_the_host() -> None:
    assert upstream_of(make_url("postgresql://u@/db?host=/tmp/pg")) == "unix:/tmp/pg/.s.PGSQL.5432"
    assert upstream_of(make_url("postgresql://u@db.example:6543/db")) == "db.example:6543"


def timed_select_1(conn: psycopg.Connection[Any], count: int) -> list[float]:
    """`count` SELECT 1 round trips on `conn`, each timed by the client, in ms."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def test_the_proxy_adds_the_round_trip_it_was_asked_for(postgres_url: str) -> None:
    """Every round trip through the proxy carries the delay, the measured path is within the
    run's tolerance, and what the proxy says it added agrees with what a client timed."""
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    with injected_latency(target, 2.0) as path:
        assert path is not None
        assert abs(path.measured.added_ms - 2.0) <= TOLERANCE * 2.0
        assert postgres(path.target).url.host == "127.0.0.1" and postgres(path.target).url.port
        # not prepared: psycopg's fifth execution would add a Parse round trip
        with psycopg.connect(
            postgres(path.target).dsn(), autocommit=True, prepare_threshold=None
        ) as conn:
            conn.execute("SELECT 1")
            path.proxy.seen()
            times = timed_select_1(conn, 50)
        seen = path.proxy.seen()
    # every single round trip carries the delay (within the timer's jitter), and the median
    # one the asked RTT on top of the server's own time
    assert min(times) >= 2.0 * 0.9, times
    added = statistics.median(times) - path.measured.base_ms
    assert added == pytest.approx(2.0, rel=TOLERANCE), times
    # one pair per query; the proxy's own account is exact and inside what the client timed
    # (which also holds the client's own delays: more of them on a loaded machine)
    assert seen["round_trips"] == 50
    assert seen["p50"] == pytest.approx(2.0, rel=0.05), seen
    # (the proxy's hop is an estimate, taken once: 5% for its noise; make test's other work
    # on the two cores saw 2.8%)
    assert seen["p50"] <= statistics.median(times) * 1.05, (seen, times)


def test_the_path_holds_with_many_connections_busy(postgres_url: str) -> None:
    """The thread-per-direction proxy drifted under load (2 ms asked: a median of 3.2 ms at
    16 connections, 5.9 at 64). A probe connection, timed by the client, while 31 others
    query through the proxy from another process as fast as they can."""
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    loader_code = (
        "import asyncio, sys, asyncpg\n"
        "async def one(dsn):\n"
        "    c = await asyncpg.connect(dsn)\n"
        "    while True:\n"
        "        await c.fetchval('SELECT 1')\n"
        "async def main(dsn):\n"
        "    await asyncio.gather(*(one(dsn) for _ in range(31)))\n"
        "asyncio.run(main(sys.argv[1]))\n"
    )
    with injected_latency(target, 2.0) as path:
        assert path is not None
        assert path.proxy._process is not None
        if os.sched_getscheduler(path.proxy._process.pid) != os.SCHED_FIFO:
            # without the right to a real-time priority the proxy waits for a core like any
            # process; the per-benchmark check is what guards such runs (README, Latency)
            pytest.skip("the proxy could not take a real-time priority here (needs root)")
        loader = subprocess.Popen([sys.executable, "-c", loader_code, postgres(path.target).dsn()])
        try:
            time.sleep(3)
            assert loader.poll() is None, "the load did not start"
            path.proxy.seen()
            cpu, wall = cpu_seconds(path.proxy._process.pid), time.monotonic()
            via: list[float] = []
            direct: list[float] = []
            with (
                psycopg.connect(postgres(path.target).dsn(), autocommit=True) as proxied,
                psycopg.connect(target.dsn(), autocommit=True) as straight,
            ):
                # interleaved, so both sides wait alike for a core on the loaded machine
                for _ in range(400):
                    via += timed_select_1(proxied, 1)
                    direct += timed_select_1(straight, 1)
            seen = path.proxy.seen()
            used = (cpu_seconds(path.proxy._process.pid) - cpu) / (time.monotonic() - wall)
        finally:
            loader.kill()
            loader.wait()
    assert seen["round_trips"] > 4000, seen  # the others really were busy
    # what the client saw the proxy add: through it minus straight to the server, both timed
    # under the same load. (Minus the idle path's base instead, the client's own waits for a
    # core on two saturated cores counted as the proxy's: CI saw 2.5 and 2.8 ms for 2.) The old
    # thread-per-direction proxy added 3.4-4.1 ms here, this one 1.6-2.1.
    added = statistics.median(via) - statistics.median(direct)
    assert added == pytest.approx(2.0, rel=TOLERANCE), (via, direct)
    assert seen["p50"] == pytest.approx(2.0, rel=0.1), seen
    assert seen["p99"] <= 2.0 * 2, seen
    # the proxy's account of its own CPU agrees with the kernel's (in 10 ms ticks)
    assert seen["cores"] == pytest.approx(used, abs=0.1), (seen, used)


def test_a_new_connection_pays_the_tcp_handshake(postgres_url: str) -> None:
    """Over a network connect() takes a round trip before the first byte can go: a new
    connection through the proxy costs the handshake and PostgreSQL's start-up exchange
    (one round trip with trust authentication and no TLS), not just the latter."""
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    rtt = 20.0
    with injected_latency(target, rtt) as path:
        assert path is not None
        dsn = postgres(path.target).dsn()
        took = []
        path.proxy.seen()
        for _ in range(5):
            start = time.perf_counter()
            with psycopg.connect(dsn, autocommit=True, sslmode="disable", gssencmode="disable"):
                took.append((time.perf_counter() - start) * 1e3)
        seen = path.proxy.seen()
    assert min(took) >= 2 * rtt * 0.97, took
    # the handshake belongs to the connection: the RTT seen per request/reply pair (here the
    # start-up exchange, one per connection) does not count it
    assert seen["round_trips"] >= 5  # more than one a connection with password exchanges
    assert seen["max"] == pytest.approx(rtt, rel=0.1), seen


def test_an_idle_proxy_uses_no_cpu_after_connections_end_in_every_way(
    postgres_url: str,
) -> None:
    """At a real-time priority a loop that spins takes a whole core from the benchmark:
    after clients that quit cleanly, hang up mid-request, reset, or never send a byte, the
    proxy must be asleep."""
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    proxy = LatencyProxy(target, 0.5)
    proxied = proxy.start()
    try:
        address = ("127.0.0.1", postgres(proxied).url.port)
        for _ in range(3):
            with psycopg.connect(postgres(proxied).dsn(), autocommit=True) as conn:
                conn.execute("SELECT 1")
            silent = socket.create_connection(address)
            silent.close()
            half = socket.create_connection(address)
            half.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
            half.shutdown(socket.SHUT_WR)
            half.recv(1)
            half.close()
            reset = socket.create_connection(address)
            reset.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
            reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            reset.close()
        time.sleep(0.5)
        assert proxy._process is not None
        pid = proxy._process.pid
        before = cpu_seconds(pid)
        time.sleep(1.0)
        assert cpu_seconds(pid) - before < 0.05
        # and it still serves
        with psycopg.connect(postgres(proxied).dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        proxy.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_large_stream_comes_through_whole_and_in_order_both_ways() -> None:
    """COPY and large results are streams of many reads: every byte must arrive, in order,
    whatever the kernel's stamps and the proxy's clock do (chunks read from one kernel
    buffer carry one stamp; a reorder there once corrupted a 23 MB COPY)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    echoing = threading.Thread(target=echo, daemon=True)
    echoing.start()
    target = PostgresTarget(parse_postgres_url(f"postgresql://u@127.0.0.1:{port}/x"), False)
    proxy = LatencyProxy(target, 0.5)
    proxied = proxy.start()
    sent = b"".join(b"%09d\n" % i for i in range(2_000_000))  # 20 MB of numbered lines
    received = bytearray()
    try:
        with socket.create_connection(("127.0.0.1", postgres(proxied).url.port)) as client:

            def write() -> None:
                client.sendall(sent)
                client.shutdown(socket.SHUT_WR)

            writing = threading.Thread(target=write)
            writing.start()
            client.settimeout(60)
            while data := client.recv(1 << 16):
                received += data
            writing.join()
    finally:
        proxy.stop()
        server.close()
    assert len(received) == len(sent)
    assert received == sent, "bytes reordered or altered"


def test_no_proxy_without_latency(postgres_url: str) -> None:
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    with injected_latency(target, 0) as path:
        assert path is None


def test_a_negative_rtt_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_cli("run", "engines", "-b", "psycopg", "--rtt-ms", "-1", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sqlabench: error: --rtt-ms must be between 0 and 1000, not -1"
    ]
    assert list(tmp_path.iterdir()) == []


def test_lazy_loading_pays_the_latency_on_every_statement(tmp_path: Path) -> None:
    done = run_cli(
        "run", "loading", "--profile", "quick", "-b", "psycopg", "-b", "sqlite",
        "--rtt-ms", "2", "-k", "lazy and one_to_many", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SQLite backends are unaffected" in done.stdout
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    meta = data["sqlabench"]
    # the proxy holds back the asked RTT less its own hop time, measured once at start; on a
    # loaded machine that estimate can run a little high (seen: 1.97 ms for 2 ms asked)
    assert meta["rtt_ms"] == 2 and meta["rtt_measured_ms"] >= 2 * 0.95
    pg = [b for b in data["benchmarks"] if b["extra_info"]["backend"] == "psycopg"]
    assert pg
    for b in pg:
        info = b["extra_info"]
        assert info["verified"] is True
        assert info["parents"] >= 10
        assert b["stats"]["min"] >= info["statements"] * 0.002
        # the delay the benchmark itself saw, over every round trip of its rounds
        seen = info["rtt_seen_ms"]
        assert 0 <= info["proxy_cpu"] < 1
        assert seen["round_trips"] >= info["statements"] * b["stats"]["rounds"]
        assert seen["p50"] == pytest.approx(2.0, rel=TOLERANCE)
        assert seen["p50"] <= seen["p99"] <= seen["max"]
    sqlite = [b for b in data["benchmarks"] if b["extra_info"]["backend"] == "sqlite"]
    assert sqlite and all("rtt_seen_ms" not in b["extra_info"] for b in sqlite)


OFF_PATH = """
from sqlabench import latency

def seen(self):
    measured = original(self)
    if measured.get("round_trips"):
        measured["p50"] += 2.0 * float(__import__("os").environ["SQLABENCH_TEST_PATH_OFF"])
    return measured

original, latency.LatencyProxy.seen = latency.LatencyProxy.seen, seen
"""


def test_a_benchmark_whose_path_drifted_is_not_kept(tmp_path: Path) -> None:
    """The path is checked before the run on one idle connection; if it drifts under a
    benchmark's load, that benchmark's numbers answer another question: it fails, saying
    so, and is left out of the result. (The drift is simulated: the proxy's report of it is
    inflated by 50%, past the 25% tolerance.)"""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(OFF_PATH)
    out = tmp_path / "out"
    done = run_cli(
        "run", "engines", "--profile", "quick", "-b", "psycopg", "--rtt-ms", "2",
        "-k", "pk_lookup", "--out", str(out),
        env={"PYTHONPATH": str(hooks), "SQLABENCH_TEST_PATH_OFF": "0.5"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    [path] = out.glob("*.json")
    data = json.loads(path.read_text())
    failures = data["sqlabench"]["failures"]
    assert failures and data["benchmarks"] == []
    for failure in failures:
        assert "the latency path was off" in failure["error"]
        assert "for 2 ms asked, more than 25% off" in failure["error"]


def test_one_path_measurement_spoiled_by_a_load_spike_is_measured_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI saw 2.8-3.1 ms for 2 ms asked while the machine was loaded, and the run refused to
    start; measured again seconds later, the path was right. One spoiled measurement must not
    refuse a run, a path that stays off must."""
    from sqlabench import latency

    target = PostgresTarget(parse_postgres_url("postgresql://u@127.0.0.1:1/db"), embedded=False)

    class FakeProxy:
        """Holds 1.95 ms a round trip: the first measurement (2.0 added) finds a 0.05 ms hop."""

        def __init__(self, upstream: PostgresTarget, one_way_ms: float) -> None:
            self.retuned: tuple[float, float] | None = None

        def start(self) -> PostgresTarget:
            return target

        def seen(self) -> dict[str, float]:
            return {"round_trips": 300, "p50": 1.95}

        def retune(self, one_way_ms: float, hop_ms: float) -> None:
            self.retuned = (one_way_ms, hop_ms)

        def stop(self) -> None:
            pass

    readings = iter([2.0, 2.9, 2.05, 2.0, 2.9, 2.9, 2.9])
    monkeypatch.setattr(latency, "LatencyProxy", FakeProxy)
    monkeypatch.setattr(
        latency, "measure_path",
        lambda d, p, rtt: latency.PathMeasurement(rtt, 0.1 + next(readings), 0.1),
    )  # fmt: skip
    with injected_latency(target, 2.0) as path:
        assert path is not None and path.measured.added_ms == pytest.approx(2.05)
        # the delay held is the asked RTT less the hop, half each way
        assert path.proxy.retuned == pytest.approx((0.975, 0.05))  # type: ignore[attr-defined]
    refused = pytest.raises(SqlabenchError, match=r"adds 2\.900 ms .* in 3 measurements")
    with refused, injected_latency(target, 2.0):
        pass
