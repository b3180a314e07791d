"""Offset or keyset pagination: how does reading a page cost more the deeper it is?

A user's own question, written against `sqlabench.api` and run like a built-in one:
`sqlabench run examples/pagination.py`. Each operation reads one page of 20 posts ordered by
id, either with `OFFSET k*20 LIMIT 20` (the server reads and throws away every row before the
page) or with a keyset condition `WHERE id > <last id of the previous page> LIMIT 20` (the
index goes straight to the page). Every benchmark checks that it ran one statement, fetched 20
rows, and that they are exactly the page's posts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, select

from sqlabench.api import (
    Backend,
    BenchmarkInfo,
    DataSize,
    Post,
    ResultFile,
    RunContext,
    StatementCounter,
    Table,
    case_parameters,
    check,
    held_connection,
    measure,
    seed,
    sync_engine,
    variants_answer,
    variants_figure,
    variants_table,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

QUESTION = "pagination"
PAGE_SIZE = 20


class PaginationInfo(BenchmarkInfo, total=False):
    """What a pagination benchmark records in `extra_info` (its typed record)."""

    strategy: str
    page: int
    statements: float
    rows_fetched: float


INFO = PaginationInfo
STRATEGIES = ("offset", "keyset")
PROFILES: dict[str, tuple[DataSize, tuple[int, ...]]] = {
    # (the seeded data, the pages read: 0 is the first)
    "smoke": (DataSize(users=50, posts_per_user=10), (0, 24)),
    "quick": (DataSize(users=1_000, posts_per_user=10), (0, 50, 499)),
    "full": (DataSize(users=10_000, posts_per_user=10), (0, 50, 500, 4_999)),
}


@dataclass(frozen=True)
class Case:
    backend: Backend
    strategy: str
    page: int

    @property
    def id(self) -> str:
        return f"{self.backend.name}-{self.strategy}-page{self.page}"


def cases(backends: list[Backend], profile: str) -> list[Case]:
    """Every strategy at every page, on the sync backends (the question is the server's
    work, not the driver's mode)."""
    _, pages = PROFILES[profile]
    return [
        Case(backend, strategy, page)
        for backend in backends
        if not backend.is_async
        for page in pages
        for strategy in STRATEGIES
    ]


pytest_generate_tests, case = case_parameters(cases)


def page_query(case: Case) -> Executable:
    query = select(Post.id, Post.title).order_by(Post.id).limit(PAGE_SIZE)
    if case.strategy == "offset":
        return query.offset(case.page * PAGE_SIZE)
    # the previous page's last id, as a client would carry it from one page to the next
    return query.where(Post.id > case.page * PAGE_SIZE)


def expected_page(page: int) -> list[tuple[int, str]]:
    """The page as seeded: posts are numbered 1..N with titles `post <id>`."""
    first = page * PAGE_SIZE + 1
    return [(i, f"post {i}") for i in range(first, first + PAGE_SIZE)]


def test_pagination(benchmark: Any, sqlabench_run: RunContext, case: Case) -> None:
    """Read one page; verify one statement, 20 rows and the page's exact posts."""
    size, _ = PROFILES[sqlabench_run.profile]
    target = sqlabench_run.seeded(case.backend, f"{QUESTION}:{size}", lambda t: seed(t, size))
    benchmark.group = f"{QUESTION}-{case.backend.name}-page{case.page}"
    benchmark.extra_info.update(
        PaginationInfo(
            question=QUESTION, backend=case.backend.name, mode=case.backend.mode,
            strategy=case.strategy, page=case.page, verified=False,
        )
    )  # fmt: skip
    query = page_query(case)
    counter = StatementCounter(count_rows=True)
    with contextlib.ExitStack() as stack:
        conn: Connection = held_connection(sync_engine(case.backend, target, counter, stack), stack)
        outcome = measure(benchmark, lambda: conn.execute(query).all(), counter)
    check(
        outcome.statements_per_call == 1,
        f"expected 1 statement, ran {outcome.statements_per_call:g}",
    )
    check(
        outcome.rows_per_call == PAGE_SIZE,
        f"expected {PAGE_SIZE} rows, fetched {outcome.rows_per_call:g}",
    )
    for rows in outcome.results:
        check(
            [tuple(r) for r in rows] == expected_page(case.page),
            "the page read is not the seeded one",
        )
    # what was counted, not what was expected: the checks above already held them equal
    benchmark.extra_info.update(
        PaginationInfo(
            statements=outcome.statements_per_call,
            rows_fetched=outcome.rows_per_call,
            verified=True,
        )
    )


# --- tables, chart and answer: read from a result file, never while measuring ---------------

TITLE = "Offset or keyset pagination?"


def tables(result: ResultFile) -> list[Table]:
    return variants_table(result, QUESTION, ("backend", "page"), "strategy")


def figures(result: ResultFile) -> list[tuple[str, Figure | None]]:
    backends = list(dict.fromkeys(b.backend for b in result.benchmarks if b.question == QUESTION))
    return [
        (
            f"{QUESTION}-{backend}",
            variants_figure(
                result, QUESTION, "page", "strategy",
                f"pagination on {backend}: time to read page N ({PAGE_SIZE} posts) by strategy",
                backend,
            ),
        )
        for backend in backends
    ]  # fmt: skip


def answer(result: ResultFile) -> str:
    return variants_answer(result, QUESTION, ("backend", "page"), "strategy")
