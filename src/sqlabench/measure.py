"""Timing, statement counting and verification glue around pytest-benchmark.

pytest-benchmark times plain callables and has no coroutine support. Async operations are timed
inside one running event loop, never with an event-loop round trip per call: pytest-benchmark's
own loop (calibration, warm-up, rounds) runs in a greenlet inside the event loop, and each timed
round switches into the loop once, outside the timer, then awaits the operation `iterations`
times between two timer reads, as pyperf's in-loop timer does. Per operation the harness adds
only the await of one coroutine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.cursor import CursorFetchStrategy
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from sqlabench import counting
from sqlabench.compat import await_ as _await

T = TypeVar("T")

KEPT_RESULTS = 64
"""How many of the last results of the timed calls are kept for verification."""

COUNTED_CALLS = 3
"""Calls made after the timed ones, untimed, to count statements and rows per operation: the
counting listener and fetch strategy are off while pytest-benchmark times (README, "What is
timed"). Operations in fixed rounds are counted as they run."""


class VerificationError(AssertionError):
    """A benchmark did not do the work it claims to time."""


class StatementCounter:
    """Counts the SQL statements the server executes for an operation.

    The SQLAlchemy layers are counted with the engine's `before_cursor_execute` event (an
    executemany counts once per parameter set: the server runs the statement that often, even
    when the driver pipelines them); raw-driver benchmarks add to `count` themselves, the same
    way. Transaction control (BEGIN, COMMIT, ROLLBACK) is not counted in either.
    """

    def __init__(self, count_rows: bool = False) -> None:
        self.count = 0
        self.rows = 0
        self._engines: list[Engine] = []
        self._fetch = _CountingFetchStrategy(self) if count_rows else None

    def _on_execute(
        self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: bool
    ) -> None:
        # a driver executemany runs the statement once per parameter set on the server; an
        # insertmanyvalues batch (also flagged `many`) is one multi-VALUES statement
        style = getattr(context, "execute_style", None)
        self.count += len(params) if many and style is ExecuteStyle.EXECUTEMANY else 1
        if self._fetch is not None and context is not None:
            context.cursor_fetch_strategy = self._fetch

    def attach(self, engine: Engine | AsyncEngine) -> None:
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.listen(sync_engine, "before_cursor_execute", self._on_execute)
        self._engines.append(sync_engine)

    def detach(self) -> None:
        self.pause()
        self._engines.clear()

    def pause(self) -> None:
        """Stop counting the attached engines (listener and fetch strategy off) until
        `resume`: what the harness adds must not run inside the timer."""
        for engine in self._engines:
            if event.contains(engine, "before_cursor_execute", self._on_execute):
                event.remove(engine, "before_cursor_execute", self._on_execute)

    def resume(self) -> None:
        for engine in self._engines:
            if not event.contains(engine, "before_cursor_execute", self._on_execute):
                event.listen(engine, "before_cursor_execute", self._on_execute)


class _CountingFetchStrategy(CursorFetchStrategy):
    """SQLAlchemy's default way of fetching from the driver's cursor, counting the rows.

    With `count_rows`, every statement's result fetches through this, so `rows` is the number
    of rows the database sent (duplicates of a joined eager load included). That holds for
    results read in full with the default, client-side cursor, as the loading question's are;
    it replaces the strategy that `stream_results`/`yield_per` would otherwise choose.
    """

    def __init__(self, counter: StatementCounter) -> None:
        self.counter = counter

    def fetchone(self, result: Any, dbapi_cursor: Any, hard_close: bool = False) -> Any:
        row = super().fetchone(result, dbapi_cursor, hard_close)
        if row is not None:
            self.counter.rows += 1
        return row

    def fetchmany(self, result: Any, dbapi_cursor: Any, size: int | None = None) -> Any:
        rows = super().fetchmany(result, dbapi_cursor, size)
        self.counter.rows += len(rows or ())
        return rows

    def fetchall(self, result: Any, dbapi_cursor: Any) -> Any:
        rows = super().fetchall(result, dbapi_cursor)
        self.counter.rows += len(rows or ())
        return rows


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What the timed calls did: how many there were, statements per call, the last results."""

    calls: int
    statements_per_call: float
    results: list[T]
    rows_per_call: float = 0.0


@dataclass(frozen=True)
class Rounds:
    """Fixed rounds, each after an untimed `setup` (pytest-benchmark's pedantic mode).

    For operations that change state, such as inserting into a table that must start empty.
    """

    rounds: int
    setup: Callable[[], None]
    warmup_rounds: int = 0


def _run(benchmark: Any, target: Callable[[], Any], rounds: Rounds | None) -> None:
    if rounds is None:
        benchmark(target)
    else:
        benchmark.pedantic(
            target,
            setup=rounds.setup,
            rounds=rounds.rounds,
            warmup_rounds=rounds.warmup_rounds,
            iterations=1,
        )


SLOWDOWN_ENV = "SQLABENCH_INJECT_SLOWDOWN"


def injected_slowdown() -> float:
    """The fraction by which every timed operation is made slower on purpose (0: none).

    Only `sqlabench calibrate` sets it, to measure whether compare catches a slowdown of a
    known size; the run records it, so such a result cannot pass for a real one.
    """
    try:
        value = float(os.environ.get(SLOWDOWN_ENV) or 0)
    except ValueError:
        return 0.0
    return value if 0 < value < 10 else 0.0


WORK_ENV = "SQLABENCH_INJECT_WORK"
WORK_OF_ENV = "SQLABENCH_INJECT_WORK_OF"
INSTRUCTIONS_PER_ITERATION = 194
"""Client instructions per iteration of `sum(range(m, m + n))` with m past the small-int
cache, counted with callgrind on CPython 3.11 (197,833 for n = 1,000; 1,933,683 for 10,000)."""
WORK_FIXED_INSTRUCTIONS = 2_100
"""What the wrapper itself adds to each call, iterations aside (measured the same way)."""


def injected_work_fraction() -> float:
    """The fraction SQLABENCH_INJECT_WORK asks for, when a source of counts is given too."""
    try:
        fraction = float(os.environ.get(WORK_ENV) or 0)
    except ValueError:
        return 0.0
    return fraction if 0 < fraction < 10 and os.environ.get(WORK_OF_ENV) else 0.0


def injected_work(name: str) -> int:
    """Iterations of CPU work added on purpose to each call of benchmark `name` (0: none).

    Only gate calibration sets it: SQLABENCH_INJECT_WORK is the fraction of the operation's
    own instructions to add, SQLABENCH_INJECT_WORK_OF a result file that counted them
    (`run --instructions`). Both the timed and the counting pass do the same work.
    """
    fraction = injected_work_fraction()
    source = os.environ.get(WORK_OF_ENV)
    if not fraction or not source:
        return 0
    cache = _WORK_BASES.get(source)
    if cache is None:
        from sqlabench import results

        cache = {
            b.name: float(b.extra_info.get("instructions") or 0)
            for b in results.load(source).benchmarks
        }
        _WORK_BASES[source] = cache
    wanted = cache.get(name, 0.0) * fraction
    if not wanted:
        return 0
    return max(1, round((wanted - WORK_FIXED_INSTRUCTIONS) / INSTRUCTIONS_PER_ITERATION))


_WORK_BASES: dict[str, dict[str, float]] = {}


def _with_work(op: Callable[[], T], iterations: int) -> Callable[[], T]:
    if not iterations:
        return op
    start = 1 << 10  # past the small-int cache, so each iteration costs the same

    def worked() -> T:
        result = op()
        sum(range(start, start + iterations))
        return result

    return worked


def _with_work_async(op: Callable[[], Awaitable[T]], iterations: int) -> Callable[[], Awaitable[T]]:
    if not iterations:
        return op
    start = 1 << 10

    async def worked() -> T:
        result = await op()
        sum(range(start, start + iterations))
        return result

    return worked


def _spin_for(fraction: float, started: float) -> None:
    """Busy-wait `fraction` of the time since `started`: a slowdown inside the timed call."""
    until = time.perf_counter() + (time.perf_counter() - started) * fraction
    while time.perf_counter() < until:
        pass


def measure(
    benchmark: Any,
    op: Callable[[], T],
    counter: StatementCounter,
    keep_last: int = KEPT_RESULTS,
    rounds: Rounds | None = None,
) -> Outcome[T]:
    """Time `op` with pytest-benchmark, keeping its last results and counting its statements."""
    op = _with_work(op, injected_work(getattr(benchmark, "name", "")))
    kept: deque[T] = deque(maxlen=keep_last)
    keep = kept.append
    calls = 0

    slowdown = injected_slowdown()

    def target() -> None:
        nonlocal calls
        calls += 1
        keep(op())

    def slowed_target() -> None:
        nonlocal calls
        calls += 1
        started = time.perf_counter()
        keep(op())
        _spin_for(slowdown, started)

    rounds = _dropping_kept(rounds, kept)
    before, rows_before = counter.count, counter.rows
    probe = _counting_probe()
    if probe is not None:  # the counting process: count the same calls instead of timing them

        def counted_target() -> None:
            nonlocal calls
            calls += 1
            with probe.around():
                result = op()
            keep(result)

        _count(benchmark, probe, counted_target, rounds)
        return _outcome(calls, counter, before, rows_before, kept)
    if rounds is not None:
        # fixed rounds change state (an insert into an emptied table): a call cannot be
        # repeated outside them, so they are counted as they run; one counted statement per
        # execute or executemany is nothing beside a bulk insert or a pool's round
        _run(benchmark, slowed_target if slowdown else target, rounds)
        return _outcome(calls, counter, before, rows_before, kept)
    counter.pause()
    try:
        _run(benchmark, slowed_target if slowdown else target, rounds)
    finally:
        counter.resume()
    timed = calls
    if timed == 0:
        raise VerificationError("the benchmark never called its operation")
    # the counted calls: after the timed ones, outside the timer, warm as they were
    before, rows_before = counter.count, counter.rows
    for _ in range(COUNTED_CALLS):
        op()
    counted = _outcome(COUNTED_CALLS, counter, before, rows_before, kept)
    return dataclasses.replace(counted, calls=timed)


def _dropping_kept(rounds: Rounds | None, kept: deque[Any]) -> Rounds | None:
    """Fixed rounds whose untimed setup first lets go of the previous round's result: kept
    into the next round, a 100,000-object insert's result doubled the process's memory while
    that round was timed. The last round's result is still kept for verification."""
    if rounds is None:
        return None
    setup = rounds.setup

    def drop_then_setup() -> None:
        # only what this round's result would push out: pools keeps every round's load
        if kept.maxlen is not None and len(kept) >= kept.maxlen:
            kept.popleft()
        setup()

    return dataclasses.replace(rounds, setup=drop_then_setup)


def _counting_probe() -> counting.Probe | None:
    if counting.counting_dir() is None:
        return None
    return counting.Probe(counting.probe_kind())


def _count(
    benchmark: Any, probe: counting.Probe, call: Callable[[], None], rounds: Rounds | None
) -> None:
    setup = rounds.setup if rounds is not None else None
    counts = probe.count(getattr(benchmark, "name", ""), call, setup)
    benchmark.extra_info.update(counts)


def _outcome(
    calls: int, counter: StatementCounter, before: int, rows_before: int, kept: deque[T]
) -> Outcome[T]:
    if calls == 0:
        raise VerificationError("the benchmark never called its operation")
    return Outcome(
        calls,
        per_call(counter.count - before, calls),
        list(kept),
        per_call(counter.rows - rows_before, calls),
    )


def per_call(total: int, calls: int) -> float:
    """`total / calls`, as an int when it divides evenly (counts should, exactly)."""
    return total // calls if total % calls == 0 else total / calls


async def measure_async(
    benchmark: Any,
    op: Callable[[], Awaitable[T]],
    counter: StatementCounter,
    keep_last: int = KEPT_RESULTS,
    rounds: Rounds | None = None,
) -> Outcome[T]:
    """`measure` for a coroutine function; call it from inside the running event loop.

    A `Rounds.setup` runs synchronously between rounds, outside the timer.
    """
    op = _with_work_async(op, injected_work(getattr(benchmark, "name", "")))
    kept: deque[T] = deque(maxlen=keep_last)
    keep = kept.append
    calls = 0

    slowdown = injected_slowdown()

    async def target() -> None:
        nonlocal calls
        calls += 1
        keep(await op())

    async def slowed_target() -> None:
        nonlocal calls
        calls += 1
        started = time.perf_counter()
        keep(await op())
        _spin_for(slowdown, started)

    if slowdown:
        target = slowed_target
    rounds = _dropping_kept(rounds, kept)
    before, rows_before = counter.count, counter.rows
    probe = _counting_probe()
    if probe is not None:  # the counting process: count the same calls instead of timing them

        async def counted_target() -> None:
            nonlocal calls
            calls += 1
            with probe.around():  # entered inside the loop, as the in-loop timer is
                result = await op()
            keep(result)

        await greenlet_spawn(_count, benchmark, probe, lambda: _await(counted_target()), rounds)
        return _outcome(calls, counter, before, rows_before, kept)
    _time_rounds_in_loop(benchmark, target)
    if rounds is not None:  # counted as they run (see measure)
        await greenlet_spawn(_run, benchmark, lambda: _await(target()), rounds)
        return _outcome(calls, counter, before, rows_before, kept)
    counter.pause()
    try:
        await greenlet_spawn(_run, benchmark, lambda: _await(target()), rounds)
    finally:
        counter.resume()
    timed = calls
    if timed == 0:
        raise VerificationError("the benchmark never called its operation")
    before, rows_before = counter.count, counter.rows
    for _ in range(COUNTED_CALLS):
        await op()
    counted = _outcome(COUNTED_CALLS, counter, before, rows_before, kept)
    return dataclasses.replace(counted, calls=timed)


def _time_rounds_in_loop(benchmark: Any, target: Callable[[], Awaitable[None]]) -> None:
    """Make pytest-benchmark time whole rounds of `target` inside the running loop.

    pytest-benchmark builds each round with `_make_runner` (pytest-benchmark 5.x); the runner
    given here keeps its contract (time `loops_range` calls, honour --benchmark-disable-gc) but
    does the timing in the loop. A benchmark object without that hook (a test double) keeps
    its own runner and times each call through one greenlet switch instead.
    """
    if not hasattr(benchmark, "_make_runner") or not hasattr(benchmark, "_timer"):
        return
    disable_gc = bool(getattr(benchmark, "_disable_gc", False))

    async def timed_round(loops_range: range, timer: Callable[[], float]) -> float:
        start = timer()
        for _ in loops_range:
            await target()
        return timer() - start

    async def timed_call(timer: Callable[[], float]) -> tuple[float, None]:
        start = timer()
        await target()
        return timer() - start, None

    def runner(loops_range: range | None, timer: Callable[[], float] = benchmark._timer) -> Any:
        gc_was_enabled = gc.isenabled()
        if disable_gc:
            gc.disable()
        try:
            if loops_range:
                return _await(timed_round(loops_range, timer))
            return _await(timed_call(timer))
        finally:
            if gc_was_enabled:
                gc.enable()

    benchmark._make_runner = lambda function, args, kwargs: runner


def reset_peak_rss() -> None:
    """Start a new peak-memory window (Linux: writing 5 to clear_refs resets VmHWM).

    Memory that earlier benchmarks freed is collected and handed back to the system first,
    so the window starts from what this process really holds.
    """
    gc.collect()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float | None:
    """The process's peak resident memory since the last reset, in MiB (None if unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def check(condition: bool, message: str) -> None:
    """Fail verification (and so the benchmark) unless `condition` holds."""
    if not condition:
        raise VerificationError(message)


def check_statements(outcome: Outcome[Any], expected: int) -> int:
    """The statements counted per operation, after checking them against `expected`.

    The count is what is recorded, never the expectation: a result must hold what was
    measured, so a test can hold it to an expectation of its own."""
    check(
        outcome.statements_per_call == expected,
        f"expected exactly {expected} SQL statement(s) per operation, "
        f"counted {outcome.statements_per_call:g}",
    )
    return int(outcome.statements_per_call)
