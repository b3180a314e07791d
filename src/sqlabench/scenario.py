"""What scenario modules share: parametrizing by case id, engines and held connections.

A scenario module lists its cases (frozen dataclasses with an `id`), and each benchmark opens
its engine, and for reads a connection held in one open transaction, through these helpers, so
every question sets up its layers the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pytest
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sqlabench.backends import Backend, Target, engine_options, sqlalchemy_url
from sqlabench.measure import StatementCounter
from sqlabench.plugin import RunContext, context_of


class HasId(Protocol):
    @property
    def id(self) -> str: ...


def case_parameters(
    make_cases: Callable[[list[Backend], str], Sequence[HasId]],
    run_rtt: bool = False,
) -> tuple[Callable[[pytest.Metafunc], None], Any]:
    """A scenario module's `pytest_generate_tests` hook and its `case` fixture.

    Tests are parametrized by case ids, not case objects: pytest-benchmark stores the
    parameters in the result JSON. The fixture maps the id back to its case, for the run's
    backends and profile (and, with `run_rtt`, the RTT the run injects for everything, as
    `make_cases`'s keyword `run_rtt_ms`). Use:
    `pytest_generate_tests, case = case_parameters(cases)`.
    """

    def made(ctx: RunContext) -> Sequence[HasId]:
        if run_rtt:
            return make_cases(ctx.backends, ctx.profile, run_rtt_ms=ctx.rtt_ms)  # type: ignore[call-arg]
        return make_cases(ctx.backends, ctx.profile)

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            ids = [c.id for c in made(context_of(metafunc.config))]
            metafunc.parametrize("case", ids, ids=ids, indirect=True)

    @pytest.fixture(name="case")
    def case_fixture(request: pytest.FixtureRequest, sqlabench_run: RunContext) -> Any:
        """The case named by the test's parameter."""
        return {c.id: c for c in made(sqlabench_run)}[request.param]

    return pytest_generate_tests, case_fixture


def sync_engine(
    backend: Backend,
    target: Target,
    counter: StatementCounter,
    stack: contextlib.ExitStack,
    **options: Any,
) -> Engine:
    """An engine for the benchmark, counted by `counter`; `options` go to create_engine."""
    engine = create_engine(
        sqlalchemy_url(backend, target), **{**engine_options(backend), **options}
    )
    stack.callback(engine.dispose)
    counter.attach(engine)
    stack.callback(counter.detach)
    return engine


def held_connection(engine: Engine, stack: contextlib.ExitStack) -> Connection:
    """A connection inside one open transaction: reads share it, so none pays a BEGIN."""
    conn = engine.connect()
    stack.callback(conn.close)
    conn.begin()
    return conn


async def async_engine(
    backend: Backend,
    target: Target,
    counter: StatementCounter,
    stack: contextlib.AsyncExitStack,
    **options: Any,
) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(backend, target), **{**engine_options(backend), **options}
    )
    stack.push_async_callback(engine.dispose)
    counter.attach(engine)
    stack.callback(counter.detach)
    return engine


async def async_held_connection(
    engine: AsyncEngine, stack: contextlib.AsyncExitStack
) -> AsyncConnection:
    conn = await engine.connect()
    stack.push_async_callback(conn.close)
    await conn.begin()
    return conn
