"""Injected network latency: a TCP proxy that delays every byte by half the round-trip time.

Over loopback a round trip costs tens of microseconds, which hides what per-row round trips
cost over a real network. `LatencyProxy` puts a proxy between the client and PostgreSQL that
holds each chunk, in each direction, for rtt/2 before passing it on, while streaming (COPY and
large results keep flowing; only their start is late).

The proxy runs in a child process, so its threads never compete with the benchmark for the GIL,
and with one thread per direction per connection and `time.sleep` (sub-millisecond on Linux):
an asyncio proxy would round every delay up to a whole millisecond of epoll timeout. The child
exits when its parent does (its stdin closes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.engine import URL

from sqlabench.backends import PostgresTarget
from sqlabench.errors import SqlabenchError

MAX_RTT_MS = 1000.0
TOLERANCE = 0.25
PATH_ATTEMPTS = 3
PROBES = 300
CHUNK = 1 << 20
SPIN = 0.0001


@dataclass(frozen=True)
class PathMeasurement:
    asked_ms: float
    measured_ms: float
    """Median SELECT 1 round trip through the proxy."""
    base_ms: float
    """Median SELECT 1 round trip straight to the server."""
    proxy_overhead_ms: float = 0.0
    """What the proxy itself adds with no delay; the delay it holds is reduced by this."""

    @property
    def added_ms(self) -> float:
        return self.measured_ms - self.base_ms


def check_rtt(rtt_ms: float) -> float:
    if not 0 <= rtt_ms <= MAX_RTT_MS:
        raise SqlabenchError(f"--rtt-ms must be between 0 and {MAX_RTT_MS:g}, not {rtt_ms:g}")
    return rtt_ms


def upstream_of(url: URL) -> str:
    """Where the proxy connects: `unix:PATH` for a socket directory, else `HOST:PORT`."""
    port = url.port or 5432
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    if not host or host.startswith("/"):
        directory = host or "/var/run/postgresql"
        return f"unix:{directory}/.s.PGSQL.{port}"
    return f"{host}:{port}"


class LatencyProxy:
    """The proxy process; `target` is the PostgreSQL target reached through it."""

    def __init__(self, target: PostgresTarget, one_way_ms: float) -> None:
        self.direct = target
        self.one_way_ms = one_way_ms
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> PostgresTarget:
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "sqlabench.latency",
                "--upstream", upstream_of(self.direct.url),
                "--one-way-ms", str(self.one_way_ms),
            ],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            # its own session: a terminal's Ctrl-C goes to the run, which stops the proxy
            # after saving, instead of killing it under the benchmark in progress
            start_new_session=True,
        )  # fmt: skip
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise SqlabenchError("the latency proxy did not start")
        self.port = int(line)
        query = {k: v for k, v in self.direct.url.query.items() if k != "host"}
        url = self.direct.url.set(host="127.0.0.1", port=self.port, query=query)
        return PostgresTarget(url, embedded=self.direct.embedded)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin:
                process.stdin.close()  # the child exits when its stdin closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def injected_latency(
    target: PostgresTarget, rtt_ms: float
) -> Iterator[tuple[PostgresTarget, PathMeasurement | None]]:
    """The target to benchmark through, with `rtt_ms` added, and the measured path."""
    if rtt_ms == 0:
        yield target, None
        return
    # the proxy's own hops cost a little: measure that first, and hold back only the rest
    overhead = proxy_overhead(target)
    if overhead > (1 + TOLERANCE) * rtt_ms:
        raise SqlabenchError(
            f"cannot add as little as {rtt_ms:g} ms of round-trip latency: the proxy's own "
            f"hops already cost {overhead:.3f} ms here"
        )
    proxy = LatencyProxy(target, max(0.0, rtt_ms - overhead) / 2)
    try:
        proxied = proxy.start()
        # a load spike on a shared machine can spoil one measurement (CI saw 2.9 ms for 2):
        # the path is measured again before the run is refused
        for _ in range(PATH_ATTEMPTS):
            measured = measure_path(target, proxied, rtt_ms)
            measured = PathMeasurement(
                rtt_ms, measured.measured_ms, measured.base_ms, round(overhead, 4)
            )
            added = measured.added_ms
            if abs(added - rtt_ms) <= TOLERANCE * rtt_ms:
                break
        else:
            raise SqlabenchError(
                f"asked for {rtt_ms:g} ms of round-trip latency but the path adds "
                f"{added:.3f} ms (measured {measured.measured_ms:.3f} ms, "
                f"{measured.base_ms:.3f} ms without the proxy) in {PATH_ATTEMPTS} "
                f"measurements: more than {TOLERANCE:.0%} off, so no numbers were taken"
            )
        yield proxied, measured
    finally:
        proxy.stop()


def round_trips(target: PostgresTarget, probes: int = PROBES) -> list[float]:
    """`probes` SELECT 1 round trips on one psycopg connection, in ms."""
    import psycopg

    with psycopg.connect(target.dsn(), autocommit=True) as conn:
        for _ in range(10):
            conn.execute("SELECT 1")
        times = []
        clock = time.perf_counter
        for _ in range(probes):
            start = clock()
            conn.execute("SELECT 1").fetchone()
            times.append((clock() - start) * 1e3)
    return times


def measure_path(direct: PostgresTarget, proxied: PostgresTarget, rtt_ms: float) -> PathMeasurement:
    """Median round trips through the proxy and straight to the server."""
    probes = PROBES if rtt_ms <= 10 else max(20, int(PROBES * 10 / rtt_ms))
    return PathMeasurement(
        asked_ms=rtt_ms,
        measured_ms=round(statistics.median(round_trips(proxied, probes)), 4),
        base_ms=round(statistics.median(round_trips(direct)), 4),
    )


def proxy_overhead(target: PostgresTarget) -> float:
    """The least the proxy's own hops add to a round trip (ms), measured with no delay.

    The least, not the median: the delay held back is the asked RTT minus this, so that no
    round trip through the proxy is faster than asked.
    """
    bare = LatencyProxy(target, 0.0)
    try:
        through = round_trips(bare.start())
    finally:
        bare.stop()
    return max(0.0, min(through) - min(round_trips(target)))


# --- the proxy process --------------------------------------------------------------------------


def _connect_upstream(upstream: str) -> socket.socket:
    if upstream.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(upstream.removeprefix("unix:"))
        return sock
    host, _, port = upstream.rpartition(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _delayed_pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Forward source → sink, each chunk passed on `delay` seconds after it arrived, in order.

    A reader thread stamps every chunk as it arrives; a writer thread passes each on when it
    is due. A server's reply often arrives in several segments: each keeps its own arrival
    time, so none is held twice, and a stream (COPY, a large result) keeps flowing.
    """
    held: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
    clock = time.monotonic

    def read() -> None:
        try:
            while data := source.recv(CHUNK):
                held.put((clock() + delay, data))
        except OSError:
            pass
        held.put((clock() + delay, b""))

    def write() -> None:
        try:
            while True:
                due, data = held.get()
                # sleep most of the wait, then spin: a sleeping thread wakes up to a few
                # hundred microseconds late, 10-20% of a 1 ms round trip
                if (wait := due - clock() - SPIN) > 0:
                    time.sleep(wait)
                while clock() < due:
                    pass
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)

    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=write, daemon=True).start()


def _fine_timer_slack() -> None:
    """Ask Linux to wake sleeping threads on time (default slack: 50 µs late); inherited."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns


def serve(upstream: str, one_way_ms: float) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    print(listener.getsockname()[1], flush=True)
    # the parent holds our stdin open; when it closes (the parent stopped or died), we stop
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    delay = one_way_ms / 1000
    _fine_timer_slack()
    while True:
        client, _ = listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server = _connect_upstream(upstream)
        except OSError:
            client.close()
            continue
        _delayed_pipe(client, server, delay)
        _delayed_pipe(server, client, delay)


def main() -> None:
    parser = argparse.ArgumentParser(description="sqlabench's latency proxy (started by runs)")
    parser.add_argument("--upstream", required=True, help="HOST:PORT or unix:SOCKET_PATH")
    parser.add_argument("--one-way-ms", type=float, required=True)
    args = parser.parse_args()
    serve(args.upstream, args.one_way_ms)


if __name__ == "__main__":
    main()
