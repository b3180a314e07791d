"""Injected latency: the proxy really delays each round trip, and bad values are refused."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from conftest import run_cli, skip_if_path_unholdable
from sqlabench.backends import PostgresTarget, parse_postgres_url
from sqlabench.errors import SqlabenchError
from sqlabench.latency import TOLERANCE, check_rtt, injected_latency, upstream_of


def test_rtt_must_be_a_sane_number() -> None:
    assert check_rtt(0) == 0 and check_rtt(2.5) == 2.5
    for bad in (-1, -0.1, 10_000):
        with pytest.raises(SqlabenchError, match="--rtt-ms must be between 0 and"):
            check_rtt(bad)


def test_upstream_is_the_socket_or_the_host() -> None:
    assert upstream_of(make_url("postgresql://u@/db?host=/tmp/pg")) == "unix:/tmp/pg/.s.PGSQL.5432"
    assert upstream_of(make_url("postgresql://u@db.example:6543/db")) == "db.example:6543"


def test_the_proxy_adds_the_round_trip_it_was_asked_for(postgres_url: str) -> None:
    """Every round trip through the proxy carries the delay, and the measured path is within
    the run's tolerance. When the proxy cannot hold 2 ms on this machine right now (it
    over-delays under load, #18), the run refuses to start, which is the product's guard: the
    test then skips, saying so, rather than fail CI on the machine's state."""
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    with contextlib.ExitStack() as stack:
        try:
            proxied, measured = stack.enter_context(injected_latency(target, 2.0))
        except SqlabenchError as refused:
            skip_if_path_unholdable(str(refused))
            raise
        assert measured is not None
        assert abs(measured.added_ms - 2.0) <= TOLERANCE * 2.0
        assert proxied.url.host == "127.0.0.1" and proxied.url.port
        with psycopg.connect(proxied.dsn(), autocommit=True) as conn:
            times = []
            for _ in range(20):
                start = time.perf_counter()
                conn.execute("SELECT 1").fetchone()
                times.append(time.perf_counter() - start)
        # every single round trip carries the delay (within the timer's noise)
        assert min(times) >= 0.002 * 0.97


def test_no_proxy_without_latency(postgres_url: str) -> None:
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)
    with injected_latency(target, 0) as (proxied, measured):
        assert proxied is target and measured is None


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
    skip_if_path_unholdable(done.stderr)
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


def test_one_path_measurement_spoiled_by_a_load_spike_is_measured_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI saw 2.8-3.1 ms for 2 ms asked while the machine was loaded, and the run refused to
    start; measured again seconds later, the path was right. One spoiled measurement must not
    refuse a run, a path that stays off must."""
    from sqlabench import latency

    target = PostgresTarget(parse_postgres_url("postgresql://u@127.0.0.1:1/db"), embedded=False)

    class FakeProxy:
        def __init__(self, upstream: PostgresTarget, one_way_ms: float) -> None:
            pass

        def start(self) -> PostgresTarget:
            return target

        def stop(self) -> None:
            pass

    readings = iter([2.9, 2.05, 2.9, 2.9, 2.9, 2.9])
    monkeypatch.setattr(latency, "LatencyProxy", FakeProxy)
    monkeypatch.setattr(latency, "proxy_overhead", lambda t: 0.05)
    monkeypatch.setattr(
        latency, "measure_path",
        lambda d, p, rtt: latency.PathMeasurement(rtt, 0.1 + next(readings), 0.1),
    )  # fmt: skip
    with injected_latency(target, 2.0) as (_, path):
        assert path is not None and path.added_ms == pytest.approx(2.05)
    refused = pytest.raises(SqlabenchError, match=r"adds 2\.900 ms .* in 3 measurements")
    with refused, injected_latency(target, 2.0):
        pass
