"""The measuring glue: statement counting, kept results, and the async harness's overhead."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from sqlabench.backends import REGISTRY, PostgresTarget, parse_postgres_url, raw_connect_async
from sqlabench.measure import (
    KEPT_RESULTS,
    SLOWDOWN_ENV,
    Rounds,
    StatementCounter,
    VerificationError,
    check_statements,
    injected_slowdown,
    measure,
    measure_async,
)


class FakeBenchmark:
    """Calls the target like pytest-benchmark does, timing each call."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.times: list[float] = []

    def __call__(self, target: Callable[[], Any]) -> None:
        clock = time.perf_counter
        for _ in range(self.rounds):
            start = clock()
            target()
            self.times.append(clock() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def test_statements_are_counted_per_call_and_results_kept(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    counter = StatementCounter()
    counter.attach(engine)
    with engine.connect() as conn:
        calls = iter(range(1000))

        def op() -> int:
            n = next(calls)
            conn.execute(text("SELECT 1")).scalar_one()
            conn.execute(text("SELECT 2")).scalar_one()
            return n

        outcome = measure(FakeBenchmark(100), op, counter)
    counter.detach()
    assert outcome.calls == 100
    assert outcome.statements_per_call == 2
    assert outcome.results == list(range(100 - KEPT_RESULTS, 100))
    assert check_statements(outcome, 2) == 2
    with pytest.raises(VerificationError, match="expected exactly 3"):
        check_statements(outcome, 3)


def test_a_benchmark_that_never_runs_fails() -> None:
    with pytest.raises(VerificationError):
        measure(FakeBenchmark(0), lambda: None, StatementCounter())


def test_async_operations_run_inside_the_running_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = []

        async def op() -> int:
            seen.append(asyncio.get_running_loop() is loop)
            await asyncio.sleep(0)
            return len(seen)

        outcome = await measure_async(FakeBenchmark(50), op, StatementCounter())
        assert outcome.calls == 50 and all(seen)
        assert outcome.results[-1] == 50

    asyncio.run(main())


@pytest.mark.benchmark(min_rounds=5, max_time=0.002, warmup=False)
@pytest.mark.parametrize("pedantic", [False, True], ids=["calibrated", "fixed-rounds"])
def test_a_real_fixture_times_async_rounds_inside_the_event_loop(
    benchmark: Any, pedantic: bool
) -> None:
    """Every timer read happens in the event loop's own greenlet, not in the one that runs
    pytest-benchmark's loop: there is no greenlet switch inside the timed region."""
    import greenlet

    seen: list[Any] = []
    real_timer = benchmark._timer

    def spying_timer() -> float:
        # pytest-benchmark also reads the timer on its own to find its precision: not a
        # timed region, so only the reads around operations are checked
        if sys._getframe(1).f_code.co_name != "compute_timer_precision":
            seen.append(greenlet.getcurrent())
        return float(real_timer())

    benchmark._timer = spying_timer

    async def noop() -> int:
        return 1

    async def main() -> Any:
        rounds = Rounds(rounds=7, setup=lambda: None) if pedantic else None
        outcome = await measure_async(benchmark, noop, StatementCounter(), rounds=rounds)
        assert outcome.calls >= 5 and outcome.results[-1] == 1
        return greenlet.getcurrent()

    loop_greenlet = asyncio.run(main())
    assert seen, "the fixture never read its timer"
    assert all(g is loop_greenlet for g in seen), (
        f"{sum(g is not loop_greenlet for g in seen)} of {len(seen)} timer reads ran outside "
        "the event loop's greenlet (each timed call paid a greenlet switch)"
    )


def test_async_harness_overhead_is_under_two_percent_of_the_fastest_async_workload(
    benchmark: Any, embedded_postgres: str
) -> None:
    """Time a no-op coroutine through the real pytest-benchmark fixture and the harness."""

    async def noop() -> None:
        return None

    async def main() -> tuple[float, float]:
        await measure_async(benchmark, noop, StatementCounter())
        clock = time.perf_counter
        direct = []
        for _ in range(20_000):
            start = clock()
            await noop()
            direct.append(clock() - start)
        return benchmark.stats.stats.median, statistics.median(direct)

    through_harness, direct = asyncio.run(main())
    overhead = max(0.0, through_harness - direct)
    workload = _fastest_async_workload(embedded_postgres, rounds=2_000)
    print(
        f"harness overhead {overhead * 1e6:.3f} µs per operation; workload {workload * 1e6:.1f} µs"
    )
    assert overhead < 0.02 * workload


def _fastest_async_workload(postgres_url: str, rounds: int) -> float:
    """A lower bound for the fastest async workload: a trivial asyncpg query, no table at all.

    Every async workload of `engines` costs at least this round trip, so staying under 2% of
    it keeps the harness under 2% of each of them.
    """
    backend = REGISTRY["asyncpg"]
    target = PostgresTarget(parse_postgres_url(postgres_url), embedded=False)

    async def main() -> float:
        conn = await raw_connect_async(backend, target)
        try:
            times = []
            clock = time.perf_counter
            for _ in range(rounds):
                start = clock()
                await conn.fetchrow("SELECT 1 AS id, 'x' AS name")
                times.append(clock() - start)
            return statistics.median(times)
        finally:
            await conn.close()

    return asyncio.run(main())


def test_an_injected_slowdown_lengthens_every_timed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `sqlabench calibrate` relies on: the slowdown is inside the timed call."""
    monkeypatch.setenv(SLOWDOWN_ENV, "0.5")
    assert injected_slowdown() == 0.5
    bench = FakeBenchmark(5)
    measure(bench, lambda: time.sleep(0.002), StatementCounter())
    assert min(bench.times) >= 0.003  # a lower bound only: sleep(2 ms) plus half of it, spun
    for bad in ("nonsense", "-1", "50"):
        monkeypatch.setenv(SLOWDOWN_ENV, bad)
        assert injected_slowdown() == 0.0


class PedanticOnly:
    """Just enough of pytest-benchmark's fixture for fixed rounds: setup, then the target."""

    name = "fixed-rounds"

    def __init__(self) -> None:
        self.extra_info: dict[str, Any] = {}

    def pedantic(
        self, target: Callable[[], Any], setup: Callable[[], Any], rounds: int,
        warmup_rounds: int, iterations: int,
    ) -> None:  # fmt: skip
        for _ in range(warmup_rounds + rounds):
            setup()
            target()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_rounds_result_is_let_go_before_the_next_round_is_timed(mode: str) -> None:
    """orm_insert_returning's 100,000 objects were kept into the next timed round (peak memory
    about 2x): at each round's setup no earlier round's result may still be alive, and the
    last one is kept for verification."""
    import weakref

    class Big:
        pass

    alive: weakref.WeakSet[Big] = weakref.WeakSet()
    at_setup: list[int] = []

    def setup() -> None:
        at_setup.append(len(alive))

    def make() -> Big:
        big = Big()
        alive.add(big)
        return big

    rounds = Rounds(3, setup, warmup_rounds=1)
    if mode == "sync":
        outcome = measure(PedanticOnly(), make, StatementCounter(), keep_last=1, rounds=rounds)
    else:

        async def make_async() -> Big:
            return make()

        async def run() -> Any:
            return await measure_async(
                PedanticOnly(), make_async, StatementCounter(), keep_last=1, rounds=rounds
            )

        outcome = asyncio.run(run())
    assert at_setup == [0, 0, 0, 0]
    assert outcome.calls == 4 and len(outcome.results) == 1 and len(alive) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_counting_runs_outside_the_timed_calls(tmp_path: Path, mode: str) -> None:
    """The statement listener and the row-counting fetch strategy are harness work: while
    pytest-benchmark times, neither may run; the counts still come out exact, from untimed
    calls made after the timed ones."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    counter = StatementCounter(count_rows=True)
    seen_listening: list[bool] = []

    class Watching(FakeBenchmark):
        def __call__(self, target: Callable[[], Any]) -> None:
            def watched() -> None:
                seen_listening.append(
                    event.contains(engine.sync_engine if mode == "async" else engine,
                                   "before_cursor_execute", counter._on_execute)
                )  # fmt: skip
                target()

            super().__call__(watched)

    sql = text("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3")
    if mode == "sync":
        engine: Any = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
        counter.attach(engine)
        with engine.connect() as conn:
            outcome = measure(Watching(20), lambda: conn.execute(sql).fetchall(), counter)
    else:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        counter.attach(engine)

        async def run() -> Any:
            async with engine.connect() as conn:

                async def op() -> Any:
                    return (await conn.execute(sql)).fetchall()

                found = await measure_async(Watching(20), op, counter)
            await engine.dispose()
            return found

        outcome = asyncio.run(run())
    assert seen_listening == [False] * 20
    assert outcome.calls == 20 and outcome.statements_per_call == 1
    assert outcome.rows_per_call == 3
    assert outcome.results[-1] == [(1,), (2,), (3,)]
    # and counting is back on for whatever the benchmark does next
    assert event.contains(
        engine.sync_engine if mode == "async" else engine, "before_cursor_execute",
        counter._on_execute,
    )  # fmt: skip


def test_every_kept_round_survives_when_a_benchmark_keeps_them_all() -> None:
    """pools keeps each timed round's load (keep_last=rounds): letting go of the previous
    result must drop only what would be pushed out, or every round but the last is lost."""
    rounds = Rounds(3, lambda: None, warmup_rounds=1)
    made = iter(range(10))
    outcome = measure(PedanticOnly(), lambda: next(made), StatementCounter(), keep_last=3,
                      rounds=rounds)  # fmt: skip
    assert outcome.results == [1, 2, 3]  # the three timed rounds, after warm-up 0
