"""Injected network latency: a TCP proxy that delays every byte by half the round-trip time.

Over loopback a round trip costs tens of microseconds, which hides what per-row round trips
cost over a real network. `LatencyProxy` puts a proxy between the client and PostgreSQL that
holds each chunk, in each direction, for rtt/2 after the kernel received it, while streaming
(COPY and large results keep flowing; only their start is late), and delays a new
connection's first bytes by the TCP handshake's round trip.

The proxy is a child process (it never competes with the benchmark for the GIL) with one
thread and one event loop for every connection (see `_DelayLoop`), at a real-time priority
where the system allows it. It keeps the delay each request/reply pair was held, so that
every benchmark records the RTT it actually saw (`LatencyProxy.seen`), not only the one
measured before the run. It exits when its parent does (its stdin closes).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import heapq
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlabench.errors import SqlabenchError
from sqlabench.families import Target
from sqlabench.families.postgresql import upstream_of as upstream_of

MAX_RTT_MS = 1000.0
TOLERANCE = 0.25
PATH_ATTEMPTS = 3
PROBES = 300


@dataclass(frozen=True)
class PathMeasurement:
    asked_ms: float
    measured_ms: float
    """Median SELECT 1 round trip through the proxy."""
    base_ms: float
    """Median SELECT 1 round trip straight to the server."""
    proxy_overhead_ms: float = 0.0
    """What the proxy's own hop adds beyond the delay it holds; that delay is reduced by it."""

    @property
    def added_ms(self) -> float:
        return self.measured_ms - self.base_ms


def check_rtt(rtt_ms: float) -> float:
    if not 0 <= rtt_ms <= MAX_RTT_MS:
        raise SqlabenchError(f"--rtt-ms must be between 0 and {MAX_RTT_MS:g}, not {rtt_ms:g}")
    return rtt_ms


class LatencyProxy:
    """The proxy process; `target` is the server reached through it."""

    def __init__(self, target: Target, one_way_ms: float, hop_ms: float = 0.0) -> None:
        self.direct = target
        self.one_way_ms = one_way_ms
        self.hop_ms = hop_ms
        """What the proxy's own hops add to a round trip, beyond the delay it holds."""
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> Target:
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "sqlabench.latency",
                "--upstream", self.direct.family.upstream(self.direct),
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
        return self.direct.family.through(self.direct, "127.0.0.1", self.port)

    def seen(self) -> dict[str, float]:
        """The round-trip delay the path added since the last call (ms), as the proxy saw it:
        `round_trips` request/reply pairs, their `p50`, `p99` and `max` (what each pair was
        held, from the kernel's arrival stamps, plus the proxy's own hops), and the `cores`
        the proxy used meanwhile; empty if the proxy is gone (the benchmarks through it fail
        on their own)."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            return {}
        try:
            process.stdin.write("stats\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except (OSError, ValueError):
            return {}
        try:
            seen = json.loads(line)
        except ValueError:
            return {}
        if not isinstance(seen, dict):
            return {}
        for key in ("p50", "p99", "max"):
            if key in seen:
                seen[key] = round(seen[key] + self.hop_ms, 4)
        return seen

    def retune(self, one_way_ms: float, hop_ms: float) -> None:
        """Hold `one_way_ms` from now on; the proxy's own hops cost `hop_ms` a round trip."""
        process = self._process
        if process is None or process.stdin is None:
            return
        self.one_way_ms, self.hop_ms = one_way_ms, hop_ms
        with contextlib.suppress(OSError, ValueError):
            process.stdin.write(f"delay {one_way_ms / 1000!r}\n")
            process.stdin.flush()

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


@dataclass(frozen=True)
class InjectedPath:
    """A running proxy, the target reached through it and the path measured before the run."""

    target: Target
    measured: PathMeasurement
    proxy: LatencyProxy


@contextlib.contextmanager
def injected_latency(target: Target, rtt_ms: float) -> Iterator[InjectedPath | None]:
    """The path to benchmark through, with `rtt_ms` added (None for 0: no proxy)."""
    if rtt_ms == 0:
        yield None
        return
    proxy = LatencyProxy(target, rtt_ms / 2)
    try:
        proxied = proxy.start()
        # the proxy's extra hop costs a little beyond the delay it holds (which it measures
        # from the kernel's arrival stamps): what a client sees, less what was held, is that
        # cost, and the delay held is reduced by it
        proxy.seen()
        first = measure_path(target, proxied, rtt_ms)
        held = proxy.seen().get("p50")
        hop = max(0.0, first.added_ms - held) if held is not None else 0.0
        if hop >= rtt_ms:
            raise SqlabenchError(
                f"cannot add as little as {rtt_ms:g} ms of round-trip latency: the proxy's own "
                f"hop already costs {hop:.3f} ms here"
            )
        proxy.retune(max(0.0, rtt_ms - hop) / 2, hop)
        # a load spike on a shared machine can spoil one measurement (CI saw 2.9 ms for 2):
        # the path is measured again before the run is refused
        for _ in range(PATH_ATTEMPTS):
            measured = measure_path(target, proxied, rtt_ms)
            measured = PathMeasurement(
                rtt_ms, measured.measured_ms, measured.base_ms, round(hop, 4)
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
        yield InjectedPath(proxied, measured, proxy)
    finally:
        proxy.stop()


def round_trips(target: Target, probes: int = PROBES) -> list[float]:
    """`probes` SELECT 1 round trips on one connection (the family's own driver), in ms."""
    with target.family.round_trip(target) as select_1:
        for _ in range(10):
            select_1()
        times = []
        clock = time.perf_counter
        for _ in range(probes):
            start = clock()
            select_1()
            times.append((clock() - start) * 1e3)
    return times


def measure_path(direct: Target, proxied: Target, rtt_ms: float) -> PathMeasurement:
    """Median round trips through the proxy and straight to the server."""
    probes = PROBES if rtt_ms <= 10 else max(20, int(PROBES * 10 / rtt_ms))
    return PathMeasurement(
        asked_ms=rtt_ms,
        measured_ms=round(statistics.median(round_trips(proxied, probes)), 4),
        base_ms=round(statistics.median(round_trips(direct)), 4),
    )


# --- the proxy process --------------------------------------------------------------------------

# Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which Python's socket module does not name:
# the kernel stamps each segment as it arrives, so a chunk read late (the loop was busy) is
# still passed on `delay` after it really arrived, and its lateness is measured, not hidden
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
_READ_SIZE = 1 << 16
_BACKLOG_LIMIT = 8 << 20
"""Bytes held in one direction before the proxy stops reading its source (the TCP window
then holds the sender back, as a slow network would)."""
_SPIN_BELOW = 20e-6
"""A wake-up this close to a chunk's due time spins the rest: cheaper than another sleep."""
_STATS_KEPT = 1_000_000


class _Direction:
    """One way of one connection: chunks read from `source`, held, then written to `sink`."""

    __slots__ = (
        "closing", "held", "last_due", "link", "outgoing", "read_done", "sink", "source",
        "upward",
    )  # fmt: skip

    def __init__(
        self, source: socket.socket, sink: socket.socket, link: _Link, upward: bool
    ) -> None:
        self.source, self.sink, self.link, self.upward = source, sink, link, upward
        self.outgoing = bytearray()
        """Due bytes the sink has not taken yet (its buffer was full)."""
        self.held = 0
        """Bytes read and not yet written: in the timer heap or in `outgoing`."""
        self.read_done = False
        self.last_due = 0.0
        """The latest due time given in this direction: no chunk may be due before it."""
        self.closing = False
        """End of stream was passed on: shut the sink's writing side once `outgoing` drains."""

    @property
    def reading(self) -> bool:
        return not self.read_done and self.held < _BACKLOG_LIMIT


class _Link:
    """A client connection and its upstream connection."""

    __slots__ = ("client", "dead", "down", "opened", "request_hold", "server", "up")

    def __init__(self, client: socket.socket, server: socket.socket, opened: float) -> None:
        self.client, self.server, self.opened = client, server, opened
        self.up = _Direction(client, server, self, upward=True)
        self.down = _Direction(server, client, self, upward=False)
        self.request_hold: float | None = None
        """How long the current request was held on its way up, until its reply comes back."""
        self.dead = False


class _DelayLoop:
    """The proxy: one thread, one event loop, one timer heap for every connection.

    Each chunk is due `delay` after the kernel received it. The loop waits in select on the
    epoll descriptor until the earliest due chunk (select takes microseconds, epoll only
    milliseconds; epoll then says which sockets are ready, at no cost per idle connection),
    waking early by how late its wake-ups have been running (about 50 µs here), and polls
    through that last stretch. One thread means no GIL hand-offs between connections: the
    thread-per-direction proxy it replaced drifted from 2 ms to 3.2 (p50) at 16 connections
    and 5.9 at 64. A new connection's first bytes go up no earlier than a TCP handshake's round trip
    after it was accepted, as over a network. Every request/reply round trip's added delay is
    kept for `stats`: the RTT the benchmarks actually saw.
    """

    def __init__(self, listener: socket.socket, upstream: str, delay: float) -> None:
        self.listener = listener
        self.upstream = upstream
        self.delay = delay
        self.heap: list[tuple[float, int, _Direction, bytes, float]] = []
        self.sequence = 0
        self.poller = select.epoll()
        self.reading_from: dict[int, _Direction] = {}
        self.writing_to: dict[int, _Direction] = {}
        self.watched: dict[int, int] = {}
        self.early = 0.0
        """How long before a due time to wake: the running mean of select's lateness."""
        self.added: list[float] = []
        """Added delay of each request/reply round trip since the last `stats`, in seconds."""
        self.buffer = bytearray(_READ_SIZE)
        self.commands = b""
        self.wall_mark, self.cpu_mark = time.monotonic(), time.process_time()

    def run(self) -> None:
        clock = time.monotonic
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        listener = self.listener.fileno()
        self.poller.register(listener, select.EPOLLIN)
        self.poller.register(stdin, select.EPOLLIN)
        wait_on = [self.poller.fileno()]
        while True:
            target = 0.0
            if not self.heap:
                events = self.poller.poll()
            else:
                target = self.heap[0][0] - self.early
                if (timeout := target - clock()) <= 0 or select.select(wait_on, [], [], timeout)[0]:
                    events = self.poller.poll(0)
                else:
                    # woke by the timer: learn how late wake-ups run here, wake that early
                    self.early += 0.05 * (clock() - target - self.early)
                    self.early = min(max(self.early, 0.0), 0.001)
                    events = []
            for fd, mask in events:
                if fd == listener:
                    self._accept()
                elif fd == stdin:
                    self._command(stdin)
                else:
                    if mask & select.EPOLLOUT and (draining := self.writing_to.get(fd)):
                        self._flush(draining)
                    if mask & ~select.EPOLLOUT and (reading := self.reading_from.get(fd)):
                        self._read(reading)
                        if mask & (select.EPOLLHUP | select.EPOLLERR):
                            self._hung_up(fd, reading, mask)
            self._release(clock)

    def _hung_up(self, fd: int, reading: _Direction, mask: int) -> None:
        """epoll reports a hang-up or an error whether asked or not, every time it is asked:
        a socket that can give or take nothing more must leave it, or the loop would spin
        (at a real-time priority, a whole core)."""
        if reading.link.dead:
            return
        if mask & select.EPOLLERR:
            self._close(reading.link)
        elif reading.read_done and fd in self.watched:
            # both ways shut: what it sent is read, what it was owed was sent or is lost
            with contextlib.suppress(OSError):
                self.poller.unregister(fd)
            del self.watched[fd]

    def _watch(self, sock: socket.socket) -> None:
        """Ask epoll for what the socket's two directions need now: reading, writing, both."""
        fd = sock.fileno()
        if fd < 0 or fd not in self.watched:
            return
        reading, writing = self.reading_from.get(fd), self.writing_to.get(fd)
        mask = (select.EPOLLIN if reading is not None and reading.reading else 0) | (
            select.EPOLLOUT if writing is not None and writing.outgoing else 0
        )
        if self.watched.get(fd) != mask:
            self.poller.modify(fd, mask)
            self.watched[fd] = mask

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        opened = time.monotonic()
        try:
            server = _connect_upstream(self.upstream)
        except OSError:
            client.close()
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, server, opened)
        for sock, source_of, sink_of in (
            (client, link.up, link.down),
            (server, link.down, link.up),
        ):
            sock.setblocking(False)
            if _SO_TIMESTAMPNS is not None and sock.family != socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            fd = sock.fileno()
            self.reading_from[fd], self.writing_to[fd] = source_of, sink_of
            self.poller.register(fd, select.EPOLLIN)
            self.watched[fd] = select.EPOLLIN

    def _read(self, direction: _Direction) -> None:
        if direction.read_done:  # epoll reports a hang-up whether asked or not
            return
        try:
            size, ancillary, _, _ = direction.source.recvmsg_into([self.buffer], 64)
        except BlockingIOError:
            return
        except OSError:
            self._close(direction.link)
            return
        now = time.monotonic()
        arrived = now
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack("qq", data[:16])
                stamped = now - (time.time() - (seconds + nanoseconds * 1e-9))
                if now - 1.0 < stamped <= now:  # a clock step would make it nonsense
                    arrived = stamped
        due = arrived + self.delay
        if direction.upward:
            # over a network the client's connect() returns a round trip after it was
            # called, and its first bytes arrive half a round trip after that
            due = max(due, direction.link.opened + 3 * self.delay)
        # a stream stays in order: reads from one kernel buffer share a stamp whose
        # conversion jitters by fractions of a microsecond, an unstamped read or a shorter
        # `delay` could be due earlier still, and the heap would pass them on first
        due = direction.last_due = max(due, direction.last_due)
        if not size:
            direction.read_done = True
        direction.held += size
        self.sequence += 1
        heapq.heappush(
            self.heap, (due, self.sequence, direction, bytes(self.buffer[:size]), arrived)
        )
        if not direction.reading:
            self._watch(direction.source)

    def _release(self, clock: Callable[[], float]) -> None:
        heap = self.heap
        while heap:
            due = heap[0][0]
            now = clock()
            if due > now:
                if due - now > _SPIN_BELOW:
                    return
                while clock() < due:
                    pass
            _, _, direction, data, arrived = heapq.heappop(heap)
            link = direction.link
            if link.dead:
                continue
            now = clock()
            hold = now - arrived
            if not data:
                direction.closing = True
            elif direction.upward:
                if link.request_hold is None:
                    # the handshake's round trip is the connection's, not this request's:
                    # counted from when a client's connect() would have returned
                    link.request_hold = now - max(arrived, link.opened + 2 * self.delay)
            elif link.request_hold is not None:
                if len(self.added) < _STATS_KEPT:
                    self.added.append(link.request_hold + hold)
                link.request_hold = None
            direction.outgoing += data
            self._flush(direction)

    def _flush(self, direction: _Direction) -> None:
        was_reading = direction.reading
        if direction.outgoing:
            try:
                sent = direction.sink.send(direction.outgoing)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._close(direction.link)
                return
            del direction.outgoing[:sent]
            direction.held -= sent
        if direction.closing and not direction.outgoing:
            with contextlib.suppress(OSError):
                direction.sink.shutdown(socket.SHUT_WR)
            direction.closing = False
            link = direction.link
            if link.up.read_done and link.down.read_done and not link.up.held + link.down.held:
                self._close(link)
                return
        self._watch(direction.sink)
        if direction.reading != was_reading:
            self._watch(direction.source)

    def _close(self, link: _Link) -> None:
        if link.dead:
            return
        link.dead = True
        for sock in (link.client, link.server):
            fd = sock.fileno()
            if fd >= 0:
                for table in (self.reading_from, self.writing_to, self.watched):
                    table.pop(fd, None)
                with contextlib.suppress(OSError):
                    self.poller.unregister(fd)
            sock.close()

    def _command(self, stdin: int) -> None:
        """`stats`: print the added round-trip delay seen since the last `stats`, as JSON;
        `delay SECONDS`: hold each chunk that long from now on.

        End of input (the parent stopped or died) ends the proxy.
        """
        try:
            chunk = os.read(stdin, 4096)
        except BlockingIOError:
            return
        if not chunk:
            os._exit(0)
        self.commands += chunk
        while b"\n" in self.commands:
            line, self.commands = self.commands.split(b"\n", 1)
            command, _, argument = line.strip().partition(b" ")
            if command == b"stats":
                now, cpu = time.monotonic(), time.process_time()
                stats = _added_percentiles(self.added)
                # the proxy's own cost over the same stretch: a proxy short of a core would
                # be late, and this says how close it came
                stats["cores"] = round((cpu - self.cpu_mark) / max(now - self.wall_mark, 1e-9), 3)
                print(json.dumps(stats), flush=True)
                self.added, self.wall_mark, self.cpu_mark = [], now, cpu
            elif command == b"delay":
                with contextlib.suppress(ValueError):
                    self.delay = max(0.0, float(argument))


def _added_percentiles(added: list[float]) -> dict[str, float]:
    if not added:
        return {"round_trips": 0.0}
    ordered = sorted(added)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 4)

    return {"round_trips": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


def _connect_upstream(upstream: str) -> socket.socket:
    """A connection to the server, started, not waited for: a slow or unreachable server must
    not stall every other connection of the loop. What the client sends meanwhile waits in
    its direction's buffer (the socket takes nothing until it is connected, and epoll says
    when it can); a refused connection reports an error, which closes the client's too."""
    if upstream.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        address: Any = upstream.removeprefix("unix:")
        pending: tuple[int, ...] = ()  # a unix socket connects at once or not at all
    else:
        host, _, port = upstream.rpartition(":")
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = (errno.EINPROGRESS,)
    if (error := sock.connect_ex(address)) and error not in pending:
        sock.close()
        raise OSError(error, os.strerror(error))
    return sock


def _fine_timer_slack() -> None:
    """Ask Linux to wake sleeping threads on time (default slack: 50 µs late); inherited."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns


def _ahead_of_the_load() -> None:
    """Run the proxy ahead of the benchmark's own processes, as a network's delay would.

    A benchmark that loads both cores (16 clients opening connections, the server forking a
    backend for each) kept the proxy waiting for a core: its chunks went out a median of
    2.3 ms late. A real-time priority (which needs root or CAP_SYS_NICE) lets it run the
    moment a chunk is due; it sleeps between chunks (waking up to a millisecond early, by how
    late its wake-ups have run, and polling from there), and Linux keeps 5% of every second
    for everything else. Without that right a higher nice value is asked
    for (which also needs it, and, under autogroup scheduling, reaches only the proxy's own
    session); without either, the per-benchmark check of the RTT seen still guards results.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return
    except (OSError, AttributeError):
        pass
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)


def serve(upstream: str, one_way_ms: float) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    print(listener.getsockname()[1], flush=True)
    _fine_timer_slack()
    _ahead_of_the_load()
    _DelayLoop(listener, upstream, one_way_ms / 1000).run()


def main() -> None:
    parser = argparse.ArgumentParser(description="sqlabench's latency proxy (started by runs)")
    parser.add_argument("--upstream", required=True, help="HOST:PORT or unix:SOCKET_PATH")
    parser.add_argument("--one-way-ms", type=float, required=True)
    args = parser.parse_args()
    serve(args.upstream, args.one_way_ms)


if __name__ == "__main__":
    main()
