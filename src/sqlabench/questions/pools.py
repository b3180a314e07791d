"""How big should the connection pool be for N concurrent workers, and do async tasks serve more?

A closed-loop load: C concurrent clients (threads on a sync engine, tasks on an async one) each
run the engines question's `request` unit (check a connection out of the pool, load a user,
rename it, commit, give the connection back) a fixed number of times, back to back. Each client
owns its own users, so clients wait for the pool and the server, never for each other's row
locks. Per grid point (pool_size × max_overflow × concurrency, plus NullPool, plus a point with
a short `pool_timeout` that runs out) it records throughput, the latency of every request, the
time spent waiting for a checkout, checkout timeouts (counted, not raised), and the peak number
of server connections the pool held.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import secrets
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest
from sqlalchemy import Engine, NullPool, event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from sqlabench import summary
from sqlabench.backends import Backend, Target
from sqlabench.database import seed, setup_engine
from sqlabench.families import family_of
from sqlabench.measure import (
    Outcome,
    Rounds,
    StatementCounter,
    check,
    measure,
    measure_async,
)
from sqlabench.models import DataSize, User
from sqlabench.plot import (
    BACKEND_ORDER,
    MARKERS,
    OKABE_ITO,
    backend_label,
    layout,
    order,
    plain_log_ticks,
    pyplot,
)  # fmt: skip
from sqlabench.plugin import RunContext
from sqlabench.results import BenchmarkInfo, BenchmarkResult, ResultFile
from sqlabench.scenario import async_engine, case_parameters, sync_engine

if TYPE_CHECKING:
    from matplotlib.figure import Figure

QUESTION = "pools"
RANK = 3


class PoolsInfo(BenchmarkInfo, total=False):
    """What a pools benchmark records in `extra_info` (its typed record)."""

    pool_class: str
    pool_size: int | None
    max_overflow: int
    pool_timeout: float
    concurrency: int
    requests: int
    rtt_ms: float
    throughput_rps: float
    throughput_rps_rounds: list[float]
    client_cpu: float
    server_cpu: float | None
    latency_ms: dict[str, float]
    pool_wait_ms: dict[str, float]
    connect_ms: dict[str, float]
    timeouts: int
    completed: int
    connections: int
    timeout_wait_ms: dict[str, float]
    statements: int


INFO = PoolsInfo
APPLICATION_NAME = "sqlabench-pools"
IDS_PER_CLIENT = 5
STATEMENTS_PER_REQUEST = 2  # SELECT the user, UPDATE its name
DEFAULT_TIMEOUT = 30.0
SHORT_TIMEOUT = 0.005


@dataclass(frozen=True)
class Point:
    pool_size: int | None
    """None: NullPool, a new connection per checkout."""
    max_overflow: int
    concurrency: int
    pool_timeout: float = DEFAULT_TIMEOUT

    @property
    def label(self) -> str:
        pool = "nullpool" if self.pool_size is None else f"pool{self.pool_size}+{self.max_overflow}"
        timeout = (
            f"-timeout{self.pool_timeout * 1000:g}ms"
            if self.pool_timeout != DEFAULT_TIMEOUT
            else ""
        )
        return f"{pool}-c{self.concurrency}{timeout}"

    def connections_needed(self) -> int:
        """The most server connections this point can hold at once."""
        if self.pool_size is None:
            return self.concurrency
        return min(self.concurrency, self.pool_size + self.max_overflow)


@dataclass(frozen=True)
class PoolsProfile:
    points: tuple[Point, ...]
    requests_per_client: int
    rounds: int


def grid(
    sizes: tuple[int, ...], overflows: tuple[int, ...], concurrencies: tuple[int, ...]
) -> tuple[Point, ...]:
    points = [
        Point(size, overflow, c) for c in concurrencies for size in sizes for overflow in overflows
    ]
    points += [Point(None, 0, c) for c in concurrencies]
    # the smallest pool under the largest load with a timeout shorter than a request: it runs out
    points.append(Point(1, 0, max(concurrencies), SHORT_TIMEOUT))
    return tuple(points)


PROFILES = {
    "smoke": PoolsProfile(grid((2,), (0,), (4,)), requests_per_client=3, rounds=1),
    # rounds per worker process (the quick profile runs 3, the full one 5): the rounds of all
    # processes join in throughput_rps_rounds
    "quick": PoolsProfile(grid((1, 5, 20), (0,), (4, 16)), requests_per_client=10, rounds=1),
    "full": PoolsProfile(
        grid((1, 5, 10, 20), (0, 10), (1, 4, 16, 64)), requests_per_client=30, rounds=1
    ),
}


RTT_MS = 2.0
"""The round trip the grid also runs at, through the latency proxy, when the run injects
none: over loopback each request's own time is mostly CPU, so on a small machine the cores,
not the pool, bound throughput, and the pool size hardly matters; at 2 ms (a round trip inside
a cloud region) requests spend their time waiting on the network, as they do in production,
and the pool is what limits them."""


@dataclass(frozen=True)
class Case:
    backend: Backend
    point: Point
    rtt_ms: float = 0.0
    """Latency this case adds on its own (0: whatever the run injects for everything)."""

    @property
    def id(self) -> str:
        rtt = f"-rtt{self.rtt_ms:g}ms" if self.rtt_ms else ""
        return f"{self.backend.name}-{self.point.label}{rtt}"


def cases(backends: list[Backend], profile: str, run_rtt_ms: float = 0.0) -> list[Case]:
    """Each point over the run's connection, and, when the run injects no latency, again at
    RTT_MS; a run with `--rtt-ms` runs the grid once, at its RTT."""
    rtts = (0.0,) if run_rtt_ms else (0.0, RTT_MS)
    return [
        Case(b, p, rtt)
        for rtt in rtts
        for b in backends
        if b.family.capabilities.client_server
        for p in PROFILES[profile].points
    ]


pytest_generate_tests, case = case_parameters(cases, run_rtt=True)


# --- the server's limits ------------------------------------------------------------------------


def connections_do_not_fit(
    needed: int, in_use: int, max_connections: int, reserved: int
) -> str | None:
    """Why a point could not get its connections from this server, or None if it can."""
    available = max_connections - reserved - in_use
    if needed <= available:
        return None
    return (
        f"needs up to {needed} connections but the server allows {max_connections} "
        f"({reserved} reserved, {in_use} in use): {available} available"
    )


def server_limits(engine: Engine) -> tuple[int, int, int]:
    """(connections in use, max_connections, superuser_reserved_connections)."""
    with engine.connect() as conn:
        return family_of(engine).server_limits(conn)


class ConnectionTally:
    """Counts, exactly, the server connections an engine's pool holds, and the peak, and
    times each one's set-up.

    One DBAPI connection is one server connection: the pool's connect and close events
    bracket each. Counted in the client, not sampled from the server, so nothing polls the
    server during the timed load and nothing else's connections are counted. A set-up runs
    from the dialect's `do_connect` to the pool's `connect`, in the thread (or asyncio task)
    that checks out, so a checkout's time splits into opening a connection and waiting for
    one: NullPool's "wait" is all set-up.
    """

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self._setup_by_owner: dict[int, float] = {}

    def attach(self, engine: Engine | AsyncEngine) -> None:
        pool_events = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.listen(pool_events, "do_connect", self._connecting)
        event.listen(pool_events, "connect", self._opened)
        event.listen(pool_events, "close", self._closed)
        event.listen(pool_events, "close_detached", self._closed)

    def setup_time(self) -> float:
        """Seconds the calling thread or task has spent opening connections, in all."""
        return self._setup_by_owner.get(_owner(), 0.0)

    def _connecting(self, _dialect: Any, record: Any, *_: Any) -> None:
        self._started[id(record)] = time.perf_counter()  # returns None: the connect proceeds

    def _opened(self, _connection: Any, record: Any) -> None:
        started = self._started.pop(id(record), None)
        took = time.perf_counter() - started if started is not None else 0.0
        owner = _owner()
        with self._lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
            self._setup_by_owner[owner] = self._setup_by_owner.get(owner, 0.0) + took

    def _closed(self, *_: Any) -> None:
        with self._lock:
            self.open -= 1


def _owner() -> int:
    """The asyncio task running this code, else the thread (a task's checkout runs in its
    greenlet, inside the task's step)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return id(task) if task is not None else threading.get_ident()


# --- one load: C clients, R requests each -------------------------------------------------------

_names = itertools.count(1)
_WORKER = secrets.token_hex(4)  # unique across the run's workers, which share the database


@dataclass
class Load:
    """What one round of the closed loop did."""

    duration: float = 0.0
    cpu: float = 0.0
    """CPU time the client process used meanwhile, every thread's (the server's is not in it)."""
    latencies: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    """Per completed request, the time its checkout waited for a connection (set-up not in)."""
    setups: list[float] = field(default_factory=list)
    """Per connection opened during a checkout, how long opening it took."""
    timeouts: int = 0
    timeout_waits: list[float] = field(default_factory=list)
    """How long each checkout that gave up waited."""
    written: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.latencies)


def client_ids(client: int) -> list[int]:
    return [client * IDS_PER_CLIENT + i + 1 for i in range(IDS_PER_CLIENT)]


class SyncLoad:
    """One round of the closed loop on a sync engine, its threads started before it is timed.

    `prepare` (untimed: pytest-benchmark's setup) starts a thread per client, each waiting at
    a barrier; `run` (timed) lets them go and waits for the last. Starting 64 threads inside
    the timed region would time thread creation too.
    """

    def __init__(
        self, engine: Engine, point: Point, requests: int, tally: ConnectionTally | None = None
    ) -> None:
        self.engine, self.point, self.requests = engine, point, requests
        self.tally = tally or ConnectionTally()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._go = threading.Barrier(point.concurrency + 1)
        self._load = Load()

    def prepare(self) -> None:
        """Start the clients and wait until every one stands at the barrier."""
        self._go.abort()  # threads of a round prepared and never run give up and exit
        self._load = Load()
        self._go = threading.Barrier(self.point.concurrency + 1)
        # daemons: a run stopped between prepare and run must not wait for them to exit
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self.point.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        # all of them there before the clock starts: a thread still starting up would be
        # timed, and one that went last through the barrier could start before the clock
        deadline = time.monotonic() + 60
        while self._go.n_waiting < self.point.concurrency and time.monotonic() < deadline:
            time.sleep(0.001)

    def run(self) -> Load:
        if not self._threads:  # run twice after one prepare (a profiler's repeated calls)
            self.prepare()
        load, threads, self._threads = self._load, self._threads, []
        try:
            cpu_started, started = time.process_time(), time.perf_counter()
            self._go.wait()
            for thread in threads:
                thread.join()
        except BaseException:
            # stopped (Ctrl-C) before every client started: the ones waiting at the barrier
            # would wait forever
            self._go.abort()
            raise
        load.duration = time.perf_counter() - started
        load.cpu = time.process_time() - cpu_started
        return load

    def _client(self, index: int) -> None:
        try:
            self._go.wait()
            self._requests(index)
        except threading.BrokenBarrierError:
            pass
        except Exception as exc:  # a thread's error would vanish: keep it for verification
            with self._lock:
                self._load.errors.append(f"{type(exc).__name__}: {exc}")

    def _requests(self, index: int) -> None:
        engine, tally, clock = self.engine, self.tally, time.perf_counter
        ids = client_ids(index)
        latencies: list[float] = []
        waits: list[float] = []
        setups: list[float] = []
        gave_up: list[float] = []
        written: dict[int, str] = {}
        for i in range(self.requests):
            uid = ids[i % IDS_PER_CLIENT]
            name = f"user {uid} p{next(_names)} w{_WORKER}"
            begun, set_up = clock(), tally.setup_time()
            try:
                conn = engine.connect()
            except sa_exc.TimeoutError:
                gave_up.append(clock() - begun)
                continue
            opening = tally.setup_time() - set_up
            waits.append(clock() - begun - opening)
            if opening:
                setups.append(opening)
            with conn, Session(bind=conn, expire_on_commit=False) as session:
                user = session.get(User, uid)
                assert user is not None
                user.name = name
                session.commit()
            latencies.append(clock() - begun)
            written[uid] = name
        load = self._load
        with self._lock:
            load.latencies += latencies
            load.waits += waits
            load.setups += setups
            load.written.update(written)
            load.timeout_waits += gave_up
            load.timeouts += len(gave_up)


def sync_load(
    engine: Engine, point: Point, requests: int, tally: ConnectionTally | None = None
) -> Load:
    """One round, prepared and run at once (for tests and the soak script)."""
    load = SyncLoad(engine, point, requests, tally)
    load.prepare()
    return load.run()


async def async_load(
    engine: AsyncEngine, point: Point, requests: int, tally: ConnectionTally | None = None
) -> Load:
    load = Load()
    tally = tally or ConnectionTally()
    clock = time.perf_counter

    async def client(index: int) -> None:
        ids = client_ids(index)
        for i in range(requests):
            uid = ids[i % IDS_PER_CLIENT]
            name = f"user {uid} p{next(_names)} w{_WORKER}"
            begun, set_up = clock(), tally.setup_time()
            try:
                conn = await engine.connect()
            except sa_exc.TimeoutError:
                load.timeout_waits.append(clock() - begun)
                load.timeouts += 1
                continue
            opening = tally.setup_time() - set_up
            load.waits.append(clock() - begun - opening)
            if opening:
                load.setups.append(opening)
            try:
                async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                    user = await session.get(User, uid)
                    assert user is not None
                    user.name = name
                    await session.commit()
            finally:
                await conn.close()
            load.latencies.append(clock() - begun)
            load.written[uid] = name

    cpu_started, started = time.process_time(), clock()
    await asyncio.gather(*(client(i) for i in range(point.concurrency)))
    load.duration, load.cpu = clock() - started, time.process_time() - cpu_started
    return load


# --- running a case -----------------------------------------------------------------------------


def pool_options(point: Point) -> dict[str, Any]:
    if point.pool_size is None:
        return {"poolclass": NullPool}
    return {
        "pool_size": point.pool_size,
        "max_overflow": point.max_overflow,
        "pool_timeout": point.pool_timeout,
    }


def named_connections(backend: Backend) -> dict[str, Any]:
    """Connect arguments that tag the pool's connections so the watcher can count them."""
    return {"connect_args": backend.named_connect_args(APPLICATION_NAME)}


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(np.asarray(samples) * 1e3, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(max(samples) * 1e3, 3),
    }


def test_pools(benchmark: Any, sqlabench_run: RunContext, case: Case) -> None:
    """Run the closed-loop load at one grid point; verify every committed change."""
    settings = PROFILES[sqlabench_run.profile]
    point = case.point
    users = max(p.concurrency for p in settings.points) * IDS_PER_CLIENT
    target = sqlabench_run.seeded(
        case.backend, f"{QUESTION}:{users}", lambda t: seed(t, DataSize(users, 0))
    )
    admin = setup_engine(target)  # the checks and the verification go straight there
    if case.rtt_ms:
        target = sqlabench_run.latency_path(case.rtt_ms).target
    try:
        # two more: the watcher's connection and the verification's
        reason = connections_do_not_fit(point.connections_needed() + 2, *server_limits(admin))
        if reason:
            pytest.skip(reason)
        benchmark.group = f"{QUESTION}-{case.backend.name}-c{point.concurrency}"
        benchmark.extra_info.update(
            PoolsInfo(
                question=QUESTION,
                backend=case.backend.name,
                mode=case.backend.mode,
                pool_class="NullPool" if point.pool_size is None else "QueuePool",
                pool_size=point.pool_size,
                max_overflow=point.max_overflow,
                pool_timeout=point.pool_timeout,
                concurrency=point.concurrency,
                requests=point.concurrency * settings.requests_per_client,
                rtt_ms=case.rtt_ms or sqlabench_run.rtt_ms,
                verified=False,
            )
        )
        server = ServerCpu(admin)
        rounds = Rounds(settings.rounds, setup=server.sample, warmup_rounds=1)
        if case.backend.is_async:
            outcome, counter = asyncio.run(
                run_async(
                    benchmark, case, target, settings.requests_per_client, rounds, server.sample
                )
            )
        else:
            outcome, counter = run_sync(
                benchmark, case, target, settings.requests_per_client, rounds, server.sample
            )
        loads: list[Load] = outcome.results
        verify(loads, counter, point, settings.requests_per_client, admin)
    finally:
        admin.dispose()

    latencies = [x for load in loads for x in load.latencies]
    waits = [x for load in loads for x in load.waits + load.timeout_waits]
    wait_ms = percentiles_ms(waits)
    setups = [x for load in loads for x in load.setups]
    benchmark.extra_info.update(
        PoolsInfo(
            throughput_rps=round(float(np.median([ld.completed / ld.duration for ld in loads])), 1),
            # each round's: their spread is the point's noise, which the answer must not read into
            throughput_rps_rounds=[round(ld.completed / ld.duration, 1) for ld in loads],
            # cores the client used: near 1 for a sync engine (one GIL) or an event loop, and the
            # point measures the client's limit, not the pool's
            client_cpu=round(float(np.median([ld.cpu / ld.duration for ld in loads])), 3),
            # and the server's, over the timed rounds (None: a server this machine cannot see)
            server_cpu=server.cores(skip=1),
            latency_ms=percentiles_ms(latencies),
            pool_wait_ms={
                "p50": wait_ms["p50"],
                "p99": wait_ms["p99"],
                "total_per_round": round(sum(waits) * 1e3 / len(loads), 3),
            },
            # connections opened by checkouts (NullPool: every one), timed apart from the wait
            connect_ms={**percentiles_ms(setups), "count": len(setups)},
            timeouts=sum(load.timeouts for load in loads),
            completed=sum(load.completed for load in loads),
            connections=counter.connections.peak,
            timeout_wait_ms=percentiles_ms([x for load in loads for x in load.timeout_waits]),
            statements=STATEMENTS_PER_REQUEST,
            verified=True,
        )
    )


def verify(
    loads: list[Load], counter: CountingRequests, point: Point, requests: int, admin: Engine
) -> None:
    """Every request either completed or timed out; every completed change is committed."""
    for load in loads:
        check(not load.errors, f"requests failed: {load.errors[:3]}")
        check(
            load.completed + load.timeouts == point.concurrency * requests,
            f"{load.completed} completed + {load.timeouts} timed out, "
            f"not {point.concurrency * requests} requests",
        )
        if point.pool_timeout == DEFAULT_TIMEOUT:
            check(load.timeouts == 0, f"{load.timeouts} checkouts timed out after 30 s")
    check(
        counter.count == STATEMENTS_PER_REQUEST * counter.requests,
        f"expected {STATEMENTS_PER_REQUEST} statements per request, counted "
        f"{counter.count} for {counter.requests}",
    )
    # a request that flushed but did not commit would pass the counts above: every completed
    # request must have committed, and the final state of every user it wrote must be there
    check(
        counter.commits == counter.requests,
        f"{counter.commits} commits for {counter.requests} completed requests",
    )
    check(
        counter.connections.peak <= point.connections_needed(),
        f"the pool held {counter.connections.peak} connections, more than "
        f"{point.connections_needed()} possible",
    )
    last = loads[-1].written
    with admin.connect() as conn:
        stored = dict(conn.execute(select(User.id, User.name).where(User.id.in_(list(last)))).all())
    check(stored == last, "committed names are missing from the database")


class ServerCpu:
    """CPU time the PostgreSQL server's processes used, where this machine can read it.

    The server is local when its family finds its process in /proc (PostgreSQL: the backend
    answering `pg_backend_pid()` is a `postgres` process): then its postmaster's own time,
    the time of every backend it has reaped (NullPool's closed connections included) and that
    of the ones alive add up to the server's. Read between rounds, in pytest-benchmark's
    untimed setup, never during one.
    """

    def __init__(self, admin: Engine) -> None:
        self.postmaster: int | None = None
        self.samples: list[tuple[float, float]] = []
        family = family_of(admin)
        if family.capabilities.server_cpu:
            with admin.connect() as conn:
                self.postmaster = family.server_process(conn)

    def sample(self) -> None:
        if self.postmaster is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.samples.append((time.perf_counter(), self._seconds()))

    def cores(self, skip: int) -> float | None:
        """Cores used from the sample after the first `skip` (the warm-up's) to the last."""
        if len(self.samples) < skip + 2:
            return None
        (t0, c0), (t1, c1) = self.samples[skip], self.samples[-1]
        return round((c1 - c0) / (t1 - t0), 3) if t1 > t0 else None

    def _seconds(self) -> float:
        assert self.postmaster is not None
        # clock ticks (10 ms) throughout: the postmaster's own, its reaped children's and its
        # living children's, one accounting, so a backend that exits between two samples
        # moves from the last sum to the first without changing the total
        ticks = sum(int(x) for x in _stat(self.postmaster)[11:15])
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = _stat(int(entry.name))
                    if int(fields[1]) == self.postmaster:
                        ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command: [state, ppid, ...], utime at 11."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


class CountingRequests(StatementCounter):
    """Thread-safe counting of statements and commits, completed requests, connections."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.commits = 0
        self.connections = ConnectionTally()
        self._lock = threading.Lock()

    def attach(self, engine: Engine | AsyncEngine) -> None:
        super().attach(engine)
        sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.listen(sync, "commit", self._on_commit)
        self.connections.attach(engine)

    def _on_execute(self, *args: Any) -> None:
        with self._lock:
            super()._on_execute(*args)

    def _on_commit(self, *_: Any) -> None:
        with self._lock:
            self.commits += 1


def run_sync(
    benchmark: Any,
    case: Case,
    target: Target,
    requests: int,
    rounds: Rounds,
    finished: Callable[[], None] = lambda: None,
) -> tuple[Outcome[Load], CountingRequests]:
    counter = CountingRequests()
    with contextlib.ExitStack() as stack:
        engine = sync_engine(
            case.backend, target, counter, stack,
            **pool_options(case.point), **named_connections(case.backend),
        )  # fmt: skip

        load = SyncLoad(engine, case.point, requests, counter.connections)

        def one_load() -> Load:
            done = load.run()
            counter.requests += done.completed
            return done

        def setup() -> None:
            rounds.setup()
            load.prepare()

        outcome = measure(
            benchmark, one_load, counter, keep_last=rounds.rounds,
            rounds=dataclasses.replace(rounds, setup=setup),
        )  # fmt: skip
        finished()  # before the pool's connections close
    return outcome, counter


async def run_async(
    benchmark: Any,
    case: Case,
    target: Target,
    requests: int,
    rounds: Rounds,
    finished: Callable[[], None] = lambda: None,
) -> tuple[Outcome[Load], CountingRequests]:
    counter = CountingRequests()
    async with contextlib.AsyncExitStack() as stack:
        engine = await async_engine(
            case.backend, target, counter, stack,
            **pool_options(case.point), **named_connections(case.backend),
        )  # fmt: skip

        async def one_load() -> Load:
            load = await async_load(engine, case.point, requests, counter.connections)
            counter.requests += load.completed
            return load

        outcome = await measure_async(
            benchmark, one_load, counter, keep_last=rounds.rounds, rounds=rounds
        )
        finished()  # before the pool's connections close
    return outcome, counter


# --- tables, chart and answer: read from a result file, never while measuring ---------------

TITLE = "What pool size for how many concurrent clients?"


def pool_label(info: dict[str, object]) -> str:
    if info.get("pool_class") == "NullPool":
        return "NullPool"
    label = f"{info.get('pool_size')}+{info.get('max_overflow')}"
    timeout = info.get("pool_timeout")
    if isinstance(timeout, int | float) and timeout < 30:
        label += f", timeout {timeout * 1000:g} ms"
    return label


POOL_TOLERANCE = 0.05
"""The least difference in throughput the pools answer reads as real, even when a point's
rounds agree more closely than this."""


CLIENT_BOUND = 0.9
"""Cores of client CPU from which a point is marked client-bound: one GIL, one event loop."""


@dataclass(frozen=True)
class PoolCurve:
    """Throughput against pool size (QueuePool, no overflow) at one backend and concurrency."""

    backend: str
    concurrency: int
    rtt_ms: float
    """The round trip the points ran at (0: over the local connection)."""
    sizes: tuple[int, ...]
    throughput: tuple[float, ...]
    """Median requests/s over the rounds, per size."""
    low: tuple[float, ...]
    high: tuple[float, ...]
    """The slowest and fastest round, per size."""
    p99_ms: tuple[float, ...]
    client_bound: tuple[bool, ...]
    service_ms: float | None
    """One request's own time, without waiting for a connection: at the smallest pool, the
    median latency less the median wait. Little's law then expects min(size, clients) /
    service_ms requests per ms."""
    null_rps: float | None
    knee: int
    """The smallest pool that serves within `tolerance` of the best."""
    served_above: bool
    """Whether every larger pool measured also served within its noise of the best (else
    "any pool of `knee` or more" would not be true)."""
    tolerance: float
    """The noise allowed: the larger of POOL_TOLERANCE and the rounds' spread (half their range
    over their median) at the best point and at the pool compared with it."""

    def expected_rps(self, size: int) -> float | None:
        if not self.service_ms:
            return None
        return min(size, self.concurrency) / self.service_ms * 1000

    @property
    def best(self) -> float:
        return max(self.throughput)

    @property
    def still_rising(self) -> bool:
        """Whether the largest pool measured is the only one within the noise of the best."""
        return self.knee == self.sizes[-1] and len(self.sizes) > 1


def throughput(info: dict[str, Any]) -> float:
    """A point's requests/s: the median over its rounds, of every worker process (the
    `throughput_rps` beside them is the last process's)."""
    rounds = [float(x) for x in info.get("throughput_rps_rounds") or []]
    if not rounds:
        return float(info.get("throughput_rps") or 0)
    return round(statistics.median(rounds), 1)


def _spread(info: dict[str, Any]) -> float:
    rounds = [float(x) for x in info.get("throughput_rps_rounds") or []]
    median = throughput(info)
    if len(rounds) < 2 or median <= 0:
        return 0.0
    return (max(rounds) - min(rounds)) / 2 / median


def pool_rtt(result: ResultFile, info: dict[str, Any]) -> float:
    """The RTT a pools point ran at: its own, or (older results) the run's."""
    own = info.get("rtt_ms")
    return float(own) if own is not None else float(result.info.rtt_ms)


def pool_curves(result: ResultFile) -> list[PoolCurve]:
    """Per backend, RTT and concurrency, the verified steady points (no timeouts, no overflow)."""
    groups: dict[tuple[str, int, float], list[BenchmarkResult]] = defaultdict(list)
    nulls: dict[tuple[str, int, float], float] = {}
    for b in result.benchmarks:
        info = b.extra_info
        if b.question != "pools" or not info.get("verified") or info.get("timeouts"):
            continue
        key = (b.backend, int(info["concurrency"]), pool_rtt(result, info))
        if info.get("pool_class") == "NullPool":
            nulls[key] = throughput(info)
        elif not info.get("max_overflow") and float(info.get("pool_timeout") or 30) >= 1:
            groups[key].append(b)
    curves = []
    for (backend, concurrency, rtt), points in groups.items():
        points.sort(key=lambda b: int(b.extra_info["pool_size"]))
        infos = [b.extra_info for b in points]
        rps = tuple(throughput(i) for i in infos)
        rounds = [
            [float(x) for x in i.get("throughput_rps_rounds") or [r]]
            for i, r in zip(infos, rps, strict=True)
        ]
        best = max(range(len(rps)), key=rps.__getitem__)

        allowed = [max(POOL_TOLERANCE, _spread(infos[best]), _spread(i)) for i in infos]
        within = [r >= rps[best] * (1 - a) for r, a in zip(rps, allowed, strict=True)]
        knee = within.index(True)
        # the noise the answer quotes: the knee's own margin, or, where the best is the knee,
        # the margin the next smaller pool fell short of
        tolerance = allowed[knee - 1 if knee == best and knee > 0 else knee]
        # one request's own time where the fewest requests run at once: at more, they share
        # the client's and the server's cores, and that shortfall is what the chart shows
        smallest = infos[0]
        service = float(smallest["latency_ms"]["p50"]) - float(smallest["pool_wait_ms"]["p50"])
        curves.append(
            PoolCurve(
                backend=backend,
                concurrency=concurrency,
                rtt_ms=rtt,
                sizes=tuple(int(i["pool_size"]) for i in infos),
                throughput=rps,
                low=tuple(min(r) for r in rounds),
                high=tuple(max(r) for r in rounds),
                p99_ms=tuple(float(i["latency_ms"]["p99"]) for i in infos),
                client_bound=tuple(float(i.get("client_cpu") or 0) >= CLIENT_BOUND for i in infos),
                service_ms=service if service > 0 else None,
                null_rps=nulls.get((backend, concurrency, rtt)),
                knee=int(infos[knee]["pool_size"]),
                served_above=all(within[knee:]),
                tolerance=tolerance,
            )
        )
    return curves


def tables(result: ResultFile) -> list[summary.Table]:
    """Per backend and concurrency: the pool to pick, and the whole grid behind it."""
    benches = [b for b in result.benchmarks if b.question == "pools"]
    if not benches:
        return []
    pick_rows: list[tuple[str, ...]] = []
    curves = pool_curves(result)
    for curve in sorted(curves, key=lambda c: (-c.rtt_ms, c.backend, c.concurrency)):
        at = curve.sizes.index(curve.knee)
        expected = curve.expected_rps(curve.knee)
        pick_rows.append(
            (
                f"{curve.rtt_ms:g}", curve.backend, str(curve.concurrency), str(curve.knee),
                f"{curve.throughput[at]:,.0f} ({curve.low[at]:,.0f} to {curve.high[at]:,.0f})",
                f"{curve.tolerance:.0%}",
                f"{expected:,.0f}" if expected else "-",
                f"{curve.p99_ms[at]:.1f}",
                "yes" if curve.client_bound[at] else "no",
                f"{curve.null_rps:,.0f}" if curve.null_rps is not None else "-",
            )
        )  # fmt: skip
    grid_rows: list[tuple[str, ...]] = []
    ordered = sorted(
        benches,
        key=lambda b: (
            -pool_rtt(result, b.extra_info), b.backend, int(b.extra_info["concurrency"]),
            -throughput(b.extra_info),
        ),
    )  # fmt: skip
    for b in ordered:
        i = b.extra_info
        lat, wait = i["latency_ms"], i["pool_wait_ms"]
        seen = i.get("rtt_seen_ms") or {}
        grid_rows.append(
            (
                f"{pool_rtt(result, i):g}", b.backend, str(i["concurrency"]), pool_label(i),
                f"{throughput(i):,.0f}",
                f"{lat['p50']:.1f}", f"{lat['p99']:.1f}", f"{wait['p99']:.1f}",
                str(i.get("timeouts")), str(i.get("connections")),
                f"{i['client_cpu']:.2f}" if "client_cpu" in i else "-",
                f"{i['server_cpu']:.2f}" if i.get("server_cpu") is not None else "-",
                f"{seen['p50']:.2f} / {seen['p99']:.2f}" if "p50" in seen else "-",
                "yes" if i.get("verified") else "NO",
            )
        )  # fmt: skip
    return [
        summary.Table(
            "pools: the smallest pool within the noise of the best, per backend and concurrency",
            ("RTT ms", "backend", "clients", "pool", "requests/s (rounds)", "noise",
             "Little's law",
             "p99 ms", "client-bound", "NullPool req/s"),
            pick_rows,
            [
                "QueuePool without overflow, points that served every request in time; noise: "
                f"the rounds' spread, at least {POOL_TOLERANCE:.0%}; Little's law: "
                "min(pool, clients) / one request's own time (at the smallest pool, latency "
                f"less wait); client-bound: the client used {CLIENT_BOUND:g} core or more.",
            ],
        ),
        summary.Table(
            "pools: every grid point (latency includes the wait for a checkout)",
            ("RTT ms", "backend", "clients", "pool", "req/s", "p50 ms", "p99 ms", "wait p99 ms",
             "timeouts", "server conns", "client cores", "server cores", "RTT seen p50/p99 ms",
             "verified"),
            grid_rows,
        ),
    ]  # fmt: skip


def figures(result: ResultFile) -> list[tuple[str, Figure | None]]:
    """`pools` at the largest RTT the points ran at (where the pool is the limit), and
    `pools-rtt<X>ms` at each other."""
    rtts = sorted({c.rtt_ms for c in pool_curves(result)}, reverse=True)
    if not rtts:
        return [("pools", None)]
    return [
        ("pools" if i == 0 else f"pools-rtt{rtt:g}ms", pools_figure(result, rtt))
        for i, rtt in enumerate(rtts)
    ]


def pools_figure(result: ResultFile, rtt_ms: float | None = None) -> Figure | None:
    """Small multiples: a column per concurrency, throughput (top) and p99 (bottom) against
    pool size, a line per backend with its rounds' range; Little's law's expectation dashed
    beside it, the knee ringed, NullPool as a dotted level, client-bound points crossed.
    The points ran at `rtt_ms` (None: the largest RTT in the result)."""
    curves = pool_curves(result)
    if rtt_ms is None and curves:
        rtt_ms = max(c.rtt_ms for c in curves)
    curves = [c for c in curves if c.rtt_ms == rtt_ms]
    if not curves:
        return None
    plt = pyplot()
    concurrencies = sorted({c.concurrency for c in curves})
    backends = order((c.backend for c in curves), BACKEND_ORDER)
    fig, axes = plt.subplots(
        2, len(concurrencies), figsize=(3.6 * len(concurrencies) + 1.8, 6.4),
        squeeze=False, sharex=True,
    )  # fmt: skip
    sizes = sorted({size for c in curves for size in c.sizes})
    for column, concurrency in enumerate(concurrencies):
        top, bottom = axes[0][column], axes[1][column]
        for curve in (c for c in curves if c.concurrency == concurrency):
            index = backends.index(curve.backend)
            colour, marker = OKABE_ITO[index % 8], MARKERS[index % len(MARKERS)]
            # backends side by side at each size (a few percent apart on the log axis), so
            # that one's range bar does not hide another's
            dodge = 1 + 0.05 * (index - (len(backends) - 1) / 2)
            xs = [size * dodge for size in curve.sizes]
            ys = list(curve.throughput)
            errors = [
                [y - low for y, low in zip(ys, curve.low, strict=True)],
                [high - y for y, high in zip(ys, curve.high, strict=True)],
            ]
            top.errorbar(
                xs, ys, yerr=errors, color=colour, marker=marker, markersize=4, capsize=2,
                label=backend_label(result, curve.backend, " "),
            )  # fmt: skip
            if curve.service_ms:
                dense = sorted({*range(1, max(sizes) + 1)})
                expected = [curve.expected_rps(k) or 0.0 for k in dense]
                top.plot(dense, expected, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
            knee = curve.sizes.index(curve.knee)
            top.plot(
                [xs[knee]], [curve.throughput[knee]], marker="o", markersize=11,
                markerfacecolor="none", markeredgecolor=colour, linestyle="none",
            )  # fmt: skip
            for x, y, bound in zip(xs, ys, curve.client_bound, strict=True):
                if bound:
                    top.plot([x], [y], marker="x", color="#000000", markersize=7)
            if curve.null_rps is not None:
                top.axhline(curve.null_rps, color=colour, linestyle=":", linewidth=1)
            bottom.plot(xs, curve.p99_ms, color=colour, marker=marker, markersize=4)
        top.set_title(f"{concurrency} concurrent clients", fontsize=9)
        # scaled to what was measured: where Little's law runs far above it (the cores, not
        # the pool, are the limit), its line leaves the panel rather than flatten the data
        measured = max(max(c.high) for c in curves if c.concurrency == concurrency)
        top.set_ylim(0, measured * 1.35)
        bottom.set_yscale("log")
        plain_log_ticks(bottom.yaxis)
        bottom.set_xlabel("pool_size (log)")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(size) for size in sizes])
            ax.axvline(concurrency, color="#999999", linewidth=0.6)
    axes[0][0].set_ylabel("throughput (requests/s)")
    axes[1][0].set_ylabel("p99 latency (ms, log)")
    from matplotlib.lines import Line2D

    handles, labels = axes[0][0].get_legend_handles_labels()
    for column in range(1, len(concurrencies)):
        more, names = axes[0][column].get_legend_handles_labels()
        for handle, name in zip(more, names, strict=True):
            if name not in labels:
                handles.append(handle)
                labels.append(name)
    key = [
        (Line2D([], [], color="#555555", linestyle="--"), "Little's law"),
        (Line2D([], [], color="#555555", linestyle=":"), "NullPool"),
        (Line2D([], [], marker="o", markersize=9, markerfacecolor="none",
                markeredgecolor="#555555", linestyle="none"), "knee"),
        (Line2D([], [], marker="x", color="#000000", linestyle="none"), "client-bound"),
        (Line2D([], [], color="#999999", linewidth=0.6), "pool = clients"),
    ]  # fmt: skip
    fig.legend(
        handles + [h for h, _ in key], labels + [n for _, n in key],
        loc="center right", frameon=False, fontsize=8,
    )  # fmt: skip
    where = f"at {rtt_ms:g} ms RTT" if rtt_ms else "over a local connection"
    fig.suptitle(
        f"pools {where}: throughput and p99 latency against pool size, a column per load;\n"
        "bars: the rounds' range; knee: the smallest pool within the noise of the best "
        "(QueuePool, no overflow)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    layout(fig, right=0.80)
    return cast("Figure", fig)


def answer(result: ResultFile) -> str:
    """The pool size to pick, named only where the rounds separate it from smaller pools."""
    every = pool_curves(result)
    if not every:
        return "No verified pools result in this run (no pool served every request in time)."
    # the injected round trip first: that is where the pool, not the cores, is the limit
    return " ".join(
        _pools_sentence([c for c in every if c.rtt_ms == rtt], rtt)
        for rtt in sorted({c.rtt_ms for c in every}, reverse=True)
    )


def _pools_sentence(curves: list[PoolCurve], rtt: float) -> str:
    concurrency = max(c.concurrency for c in curves)
    parts = []
    for backend in order({c.backend for c in curves}, BACKEND_ORDER):
        curve = next(
            (c for c in curves if c.backend == backend and c.concurrency == concurrency), None
        )
        if curve is None:
            continue
        at = curve.sizes.index(curve.knee)
        rps = curve.throughput[at]
        if len(curve.sizes) == 1:
            part = f"on {backend} only pool {curve.knee} was measured ({rps:,.0f} requests/s)"
        elif not curve.served_above:
            # a larger pool served less (a dip, or a decline past the best): no "or more"
            worst = min(range(at, len(curve.sizes)), key=curve.throughput.__getitem__)
            part = (
                f"on {backend} pool {curve.knee} served within {curve.tolerance:.0%} of the "
                f"best ({curve.best:,.0f} requests/s), but not every larger one did (pool "
                f"{curve.sizes[worst]}: {curve.throughput[worst]:,.0f})"
            )
            if at > 0:
                part += _smaller(curve, at)
        elif not curve.still_rising:
            part = (
                f"on {backend} any pool of {curve.knee} or more serves within "
                f"{curve.tolerance:.0%} of the best ({curve.best:,.0f} requests/s)"
            )
            if at > 0:
                part += _smaller(curve, at)
        elif curve.knee >= concurrency:
            part = (
                f"on {backend} only a connection per client (pool {curve.knee}) served within "
                f"{curve.tolerance:.0%} of the best, {rps:,.0f} requests/s" + _smaller(curve, at)
            )
        elif curve.client_bound[at]:
            part = (
                f"on {backend} throughput still rose at the largest pool measured "
                f"({curve.knee}: {rps:,.0f} requests/s" + _smaller(curve, at) + "), where "
                "the client process used a whole core: the client, not the pool, is the limit"
            )
        else:
            part = (
                f"on {backend} throughput still rose at the largest pool measured "
                f"({curve.knee}: {rps:,.0f} requests/s" + _smaller(curve, at) + "): a larger "
                "pool may serve more"
            )
        if curve.client_bound[at] and not (curve.still_rising and curve.knee < concurrency):
            part += " (client-bound: the client process used a whole core)"
        if curve.null_rps is not None:
            part += f"; NullPool {curve.null_rps:,.0f}"
        parts.append(part)
    where = f"at {rtt:g} ms RTT" if rtt else "over a local connection"
    return f"With {concurrency} concurrent clients {where}, " + "; ".join(parts) + "."


def _smaller(curve: PoolCurve, at: int) -> str:
    size, rps = curve.sizes[at - 1], curve.throughput[at - 1]
    return f"; pool {size}: {rps:,.0f}, {1 - rps / curve.throughput[at]:.0%} less"
