"""Which loader strategy loads an object graph fastest, and in how many statements and rows?

Each operation opens a Session on a connection held in one open transaction, loads every parent
of the seeded data (P parents with F children each), touches every relationship of the shape and
returns the graph. Shapes: `one_to_many` (users → posts), `many_to_one` (all posts → their
author; P authors), `nested` (users → posts → comments) and `two_collections` (users with posts
and addresses, where a joined load returns P × F × F rows).

Strategies: `lazy` (the default loader: touching a relationship runs one SELECT per parent; in
async code attribute access cannot do I/O, so lazy loading means awaiting
`AsyncAttrs.awaitable_attrs` per parent), `selectinload`, `joinedload`, `subqueryload`,
`immediateload`, and `contains_eager` over an explicit join. Every benchmark checks the exact
number of statements and of rows the database sent, and that the loaded graph is the seeded one
(its `graph_checksum` is the same for every strategy of a shape and size).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    Session,
    contains_eager,
    immediateload,
    joinedload,
    selectinload,
    subqueryload,
)

from sqlabench import summary
from sqlabench.backends import Backend, Target
from sqlabench.compat import selectin_chunk_size
from sqlabench.database import seed
from sqlabench.measure import Outcome, StatementCounter, check, measure, measure_async
from sqlabench.models import DataSize, Post, User
from sqlabench.plot import (
    BACKEND_ORDER,
    MARKERS,
    OKABE_ITO,
    benches_of,
    layout,
    legend,
    order,
    plain_log_ticks,
    pyplot,
    scale_and_unit,
)  # fmt: skip
from sqlabench.plugin import RunContext
from sqlabench.results import BenchmarkInfo, BenchmarkResult, ResultFile
from sqlabench.scenario import (
    async_engine,
    async_held_connection,
    case_parameters,
    held_connection,
    sync_engine,
)
from sqlabench.summary import (
    format_time,
    statement_count,
    times,
    verified,
    where,
)  # fmt: skip

if TYPE_CHECKING:
    from matplotlib.figure import Figure

QUESTION = "loading"
RANK = 2


class LoadingInfo(BenchmarkInfo, total=False):
    """What a loading benchmark records in `extra_info` (its typed record)."""

    strategy: str
    shape: str
    parents: int
    fanout: int
    statements: float
    rows_fetched: float
    selectin_chunk_size: int
    graph_checksum: str


INFO = LoadingInfo
SHAPES = ("one_to_many", "many_to_one", "nested", "two_collections")
STRATEGIES = (
    "lazy", "selectinload", "joinedload", "subqueryload", "immediateload", "contains_eager",
)  # fmt: skip
CHART_ORDER = (
    "lazy", "immediateload", "subqueryload", "selectinload", "joinedload", "contains_eager",
)  # fmt: skip
"""The chart's legend order: most statements per load first, fewest last."""
LOADERS: dict[str, Callable[..., Any]] = {
    "selectinload": selectinload,
    "joinedload": joinedload,
    "subqueryload": subqueryload,
    "immediateload": immediateload,
}
MAX_ROWS_PER_OPERATION = 2_000_000
"""Cases whose data or joined rows would exceed this are left out, with the reason."""


@dataclass(frozen=True)
class Size:
    parents: int
    fanout: int
    strategies: tuple[str, ...] = STRATEGIES
    shapes: tuple[str, ...] = SHAPES


PROFILES: dict[str, tuple[Size, ...]] = {
    # 501 parents only show selectinload's second IN list (the chunk size is 500)
    "smoke": (Size(4, 3), Size(501, 1, ("selectinload",))),
    # immediateload issues lazy loading's statements, only earlier: the full profile has it
    "quick": (
        Size(10, 3, tuple(s for s in STRATEGIES if s != "immediateload")),
        Size(50, 3, tuple(s for s in STRATEGIES if s != "immediateload")),
    ),
    # nested at 1,000 parents is 111,000 rows and ~10 s a lazy load here: it would take a full
    # run's hour on its own, so the full profile stops nested at 100 parents
    "full": (
        Size(10, 10), Size(100, 10),
        Size(1_000, 10, shapes=tuple(s for s in SHAPES if s != "nested")),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    backend: Backend
    shape: str
    strategy: str
    size: Size

    @property
    def id(self) -> str:
        size = f"P{self.size.parents}-F{self.size.fanout}"
        return f"{self.backend.name}-{self.shape}-{self.strategy}-{size}"

    @property
    def joined(self) -> bool:
        return self.strategy in ("joinedload", "contains_eager")

    def statements(self, chunk: int) -> int:
        """Exactly how many SELECTs one load of the shape takes with this strategy."""
        p, f = self.size.parents, self.size.fanout
        if self.joined:
            return 1
        # per relationship level: how many parents it loads for
        levels = {
            "one_to_many": [p],
            "many_to_one": [p],  # distinct authors: repeated ones come from the identity map
            "nested": [p, p * f],
            "two_collections": [p, p],
        }[self.shape]
        if self.strategy in ("lazy", "immediateload"):
            return 1 + sum(levels)
        if self.strategy == "selectinload":
            return 1 + sum(math.ceil(n / chunk) for n in levels)
        assert self.strategy == "subqueryload"
        return 1 + len(levels)

    def rows_fetched(self) -> int:
        """Exactly how many rows the database sends for one load."""
        p, f = self.size.parents, self.size.fanout
        if self.shape == "many_to_one":
            return p * f if self.joined else p * f + p
        if self.joined:
            return {"one_to_many": p * f, "nested": p * f * f, "two_collections": p * f * f}[
                self.shape
            ]
        return {
            "one_to_many": p + p * f,
            "nested": p + p * f + p * f * f,
            "two_collections": p + 2 * p * f,
        }[self.shape]


def data_size(size: Size) -> DataSize:
    p, f = size.parents, size.fanout
    comments = f if p * f * f <= MAX_ROWS_PER_OPERATION else 0
    return DataSize(users=p, posts_per_user=f, comments_per_post=comments, addresses_per_user=f)


def fits(case: Case) -> bool:
    p, f = case.size.parents, case.size.fanout
    if case.shape == "nested" and p * f * f > MAX_ROWS_PER_OPERATION:
        return False
    return case.rows_fetched() <= MAX_ROWS_PER_OPERATION


def cases(backends: list[Backend], profile: str) -> list[Case]:
    out = [
        Case(backend, shape, strategy, size)
        for backend, size, shape, strategy in itertools.product(
            backends, PROFILES[profile], SHAPES, STRATEGIES
        )
    ]
    return [
        c for c in out if c.strategy in c.size.strategies and c.shape in c.size.shapes and fits(c)
    ]


pytest_generate_tests, case = case_parameters(cases)


# --- the statement each case runs ---------------------------------------------------------------

PATHS: dict[str, list[tuple[Any, ...]]] = {
    "one_to_many": [(User.posts,)],
    "nested": [(User.posts, Post.comments)],
    "two_collections": [(User.posts,), (User.addresses,)],
}


def statement(case: Case) -> Select[Any]:
    if case.shape == "many_to_one":
        posts = select(Post).order_by(Post.id)
        if case.strategy == "contains_eager":
            return posts.join(Post.author).options(contains_eager(Post.author))
        if case.strategy == "lazy":
            return posts
        return posts.options(LOADERS[case.strategy](Post.author))
    stmt = select(User).order_by(User.id)
    paths = PATHS[case.shape]
    if case.strategy == "lazy":
        return stmt
    if case.strategy == "contains_eager":
        options = []
        for path in paths:
            joined = stmt
            for attr in path:
                # outer joins: a parent with an empty collection must still be loaded
                joined = joined.outerjoin(attr)
            stmt = joined
            option = contains_eager(path[0])
            for attr in path[1:]:
                option = option.contains_eager(attr)
            options.append(option)
        return stmt.options(*options)
    options = []
    for path in paths:
        option = LOADERS[case.strategy](path[0])
        for attr in path[1:]:
            option = getattr(option, case.strategy)(attr)
        options.append(option)
    return stmt.options(*options)


# --- touching the graph (timed) and reading it back (not timed) ---------------------------------


def touch(shape: str, parents: list[Any]) -> None:
    """Use every relationship of the shape, as code that renders the graph would."""
    if shape == "many_to_one":
        for post in parents:
            post.author.id  # noqa: B018
    elif shape == "one_to_many":
        for user in parents:
            len(user.posts)
    elif shape == "nested":
        for user in parents:
            for post in user.posts:
                len(post.comments)
    else:
        for user in parents:
            len(user.posts)
            len(user.addresses)


async def touch_lazy_async(shape: str, parents: list[Any]) -> None:
    """Lazy loading from async code: each relationship is awaited through awaitable_attrs."""
    if shape == "many_to_one":
        for post in parents:
            (await post.awaitable_attrs.author).id  # noqa: B018
    elif shape == "one_to_many":
        for user in parents:
            len(await user.awaitable_attrs.posts)
    elif shape == "nested":
        for user in parents:
            for post in await user.awaitable_attrs.posts:
                len(await post.awaitable_attrs.comments)
    else:
        for user in parents:
            len(await user.awaitable_attrs.posts)
            len(await user.awaitable_attrs.addresses)


def graph(shape: str, parents: list[Any]) -> tuple[Any, ...]:
    """The loaded graph as plain values, independent of the order rows arrived in."""
    if shape == "many_to_one":
        return tuple(sorted((p.id, p.title, p.author.id, p.author.name) for p in parents))

    def post_node(post: Any) -> tuple[Any, ...]:
        comments = sorted((c.id, c.body) for c in post.comments) if shape == "nested" else []
        return (post.id, post.title, tuple(comments))

    def user_node(user: Any) -> tuple[Any, ...]:
        addresses = (
            sorted((a.id, a.email) for a in user.addresses) if shape == "two_collections" else []
        )
        return (
            user.id, user.name, tuple(sorted(post_node(p) for p in user.posts)), tuple(addresses)
        )  # fmt: skip

    return tuple(sorted(user_node(u) for u in parents))


def expected_graph(shape: str, size: DataSize) -> tuple[Any, ...]:
    """The graph the seeded data must load as, computed from the data generator alone."""
    f = size.posts_per_user
    name = {u: f"user {u}" for u in range(1, size.users + 1)}
    if shape == "many_to_one":
        return tuple(
            (p, f"post {p}", (p - 1) // f + 1, name[(p - 1) // f + 1])
            for p in range(1, size.posts + 1)
        )

    def post_node(p: int) -> tuple[Any, ...]:
        c = size.comments_per_post
        comments = (
            [(i, f"comment {i}") for i in range((p - 1) * c + 1, p * c + 1)]
            if shape == "nested"
            else []
        )
        return (p, f"post {p}", tuple(comments))

    def user_node(u: int) -> tuple[Any, ...]:
        a = size.addresses_per_user
        addresses = (
            [(i, f"address{i}@example.com") for i in range((u - 1) * a + 1, u * a + 1)]
            if shape == "two_collections"
            else []
        )
        posts = tuple(post_node(p) for p in range((u - 1) * f + 1, u * f + 1))
        return (u, name[u], posts, tuple(addresses))

    return tuple(user_node(u) for u in range(1, size.users + 1))


def checksum(value: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


# --- running a case -----------------------------------------------------------------------------

KEEP_GRAPHS = 2  # graphs can be large; the last two are enough to verify


def run_sync(benchmark: Any, case: Case, target: Target) -> tuple[Outcome[Any], StatementCounter]:
    counter = StatementCounter(count_rows=True)
    unique = case.joined and case.shape != "many_to_one"
    with contextlib.ExitStack() as stack:
        conn = held_connection(sync_engine(case.backend, target, counter, stack), stack)

        def load() -> list[Any]:
            with Session(conn) as session:
                # built in each load, as a user's code builds it (engines does the same)
                result = session.execute(statement(case))
                parents = list((result.unique() if unique else result).scalars())
                touch(case.shape, parents)
                return parents

        outcome = measure(benchmark, load, counter, keep_last=KEEP_GRAPHS)
    return outcome, counter


async def run_async(
    benchmark: Any, case: Case, target: Target
) -> tuple[Outcome[Any], StatementCounter]:
    counter = StatementCounter(count_rows=True)
    unique = case.joined and case.shape != "many_to_one"
    lazy = case.strategy == "lazy"
    async with contextlib.AsyncExitStack() as stack:
        engine = await async_engine(case.backend, target, counter, stack)
        conn = await async_held_connection(engine, stack)

        async def load() -> list[Any]:
            async with AsyncSession(conn) as session:
                result = await session.execute(statement(case))
                parents = list((result.unique() if unique else result).scalars())
                if lazy:
                    await touch_lazy_async(case.shape, parents)
                else:
                    touch(case.shape, parents)
                return parents

        outcome = await measure_async(benchmark, load, counter, keep_last=KEEP_GRAPHS)
    return outcome, counter


def test_loading(benchmark: Any, sqlabench_run: RunContext, case: Case) -> None:
    """Load one shape with one strategy; verify statements, rows and the graph itself."""
    size = data_size(case.size)
    target = sqlabench_run.seeded(case.backend, f"{QUESTION}:{size}", lambda t: seed(t, size))
    benchmark.group = f"{QUESTION}-{case.shape}-P{case.size.parents}-F{case.size.fanout}"
    benchmark.extra_info.update(
        LoadingInfo(
            question=QUESTION,
            backend=case.backend.name,
            mode=case.backend.mode,
            strategy=case.strategy,
            shape=case.shape,
            parents=case.size.parents,
            fanout=case.size.fanout,
            verified=False,
        )
    )
    if case.backend.is_async:
        outcome, _ = asyncio.run(run_async(benchmark, case, target))
    else:
        outcome, _ = run_sync(benchmark, case, target)

    chunk = selectin_chunk_size()
    expected = expected_graph(case.shape, size)
    benchmark.extra_info.update(
        LoadingInfo(
            statements=outcome.statements_per_call,
            rows_fetched=outcome.rows_per_call,
            selectin_chunk_size=chunk,
        )
    )
    check(
        outcome.statements_per_call == case.statements(chunk),
        f"expected exactly {case.statements(chunk)} statements per load, "
        f"counted {outcome.statements_per_call:g}",
    )
    check(
        outcome.rows_per_call == case.rows_fetched(),
        f"expected exactly {case.rows_fetched()} rows fetched per load, "
        f"counted {outcome.rows_per_call:g}",
    )
    loaded_graphs = [graph(case.shape, parents) for parents in outcome.results]
    for loaded in loaded_graphs:
        check(loaded == expected, "the loaded object graph differs from the seeded data")
    benchmark.extra_info.update(
        LoadingInfo(
            # what was counted (equal to the expectation once the checks above passed)
            statements=int(outcome.statements_per_call),
            rows_fetched=int(outcome.rows_per_call),
            graph_checksum=checksum(loaded_graphs[-1]),  # of what the timed load returned
            verified=True,
        )
    )


# --- tables, chart and answer: read from a result file, never while measuring ---------------

TITLE = "Lazy, selectinload or joinedload?"


def tables(result: ResultFile) -> list[summary.Table]:
    """Per backend, shape and size: each strategy's time, ratio to the fastest, statements, rows."""
    groups: dict[tuple[str, str, int, int], dict[str, BenchmarkResult]] = defaultdict(dict)
    for b in result.benchmarks:
        if b.question != "loading":
            continue
        info = b.extra_info
        key = (b.backend, str(info["shape"]), int(info["parents"]), int(info["fanout"]))
        groups[key][str(info["strategy"])] = b
    if not groups:
        return []
    rows: list[tuple[str, ...]] = []
    for (backend, shape, parents, fanout), by_strategy in groups.items():
        # only a verified result can be the yardstick: one that did less would look fastest
        verified = [b for b in by_strategy.values() if b.extra_info.get("verified")]
        fastest = min(verified or by_strategy.values(), key=lambda b: b.median)
        cells = []
        for strategy in STRATEGIES:
            bench = by_strategy.get(strategy)
            if bench is None:
                cells.append("-")
                continue
            info = bench.extra_info
            cells.append(
                f"{format_time(bench.median)}{'' if info.get('verified') else ' UNVERIFIED'}\n"
                f"{_times_fastest(bench, fastest)}\n"
                f"{info.get('statements')} st, {info.get('rows_fetched')} r"
            )
        rows.append((backend, shape, f"{parents}×{fanout}", *cells))
    return [
        summary.Table(
            "loading: median time per load / × the fastest strategy / statements (st), rows (r)",
            ("backend", "shape", "P×F", *STRATEGIES),
            rows,
            [
                "P parents with F children each; every relationship of the shape is touched.",
                "Ratios compare medians measured in this run on this machine; 1.0× is fastest.",
                *summary.interval_note([b for g in groups.values() for b in g.values()]),
            ],
        )
    ]


def loading_backend(result: ResultFile) -> str | None:
    """The backend the loading chart shows: the first PostgreSQL one, else the first."""
    names = order((b.backend for b in benches_of(result, "loading")), BACKEND_ORDER)
    postgres = [n for n in names if n.startswith(("psycopg", "asyncpg"))]
    chosen = postgres or names
    return chosen[0] if chosen else None


def loading_figure(result: ResultFile, backend: str) -> Figure | None:
    benches = [b for b in benches_of(result, "loading") if b.backend == backend]
    if not benches:
        return None
    fanouts = defaultdict(set)
    for b in benches:
        fanouts[int(b.extra_info["fanout"])].add(int(b.extra_info["parents"]))
    fanout = max(fanouts, key=lambda f: (len(fanouts[f]), f))
    benches = [b for b in benches if int(b.extra_info["fanout"]) == fanout]
    plt = pyplot()
    shapes = order((str(b.extra_info["shape"]) for b in benches), ())
    strategies = order((str(b.extra_info["strategy"]) for b in benches), CHART_ORDER)
    columns = 2 if len(shapes) > 1 else 1
    rows = math.ceil(len(shapes) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(6.0 * columns, 3.6 * rows + 0.9), squeeze=False
    )
    scale, unit = scale_and_unit(b.median for b in benches)
    for ax, shape in zip(axes.flat, shapes, strict=False):
        for index, strategy in enumerate(strategies):
            points = sorted(
                (
                    (int(b.extra_info["parents"]), b)
                    for b in benches
                    if b.extra_info["shape"] == shape and b.extra_info["strategy"] == strategy
                ),
                key=lambda p: p[0],
            )
            if not points:
                continue
            xs = [p for p, _ in points]
            ys = [b.median * scale for _, b in points]
            ax.plot(
                xs, ys, marker=MARKERS[index % len(MARKERS)], color=OKABE_ITO[index % 8],
                label=strategy, linewidth=1.4, markersize=4,
            )  # fmt: skip
            last = points[-1][1]
            statements = last.extra_info.get("statements")
            ax.annotate(
                f"{statements:,} st" if isinstance(statements, int) else "",
                (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 0),
                fontsize=6.5, color=OKABE_ITO[index % 8], va="center",
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax.xaxis)
        plain_log_ticks(ax.yaxis)
        ax.set_title(shape.replace("_", " "))
        ax.set_xlabel("parents loaded (log)")
        ax.set_ylabel(f"median per load ({unit}, log)")
        ax.margins(x=0.18)
    for ax in list(axes.flat)[len(shapes) :]:
        ax.set_visible(False)
    legend(fig, axes, len(shapes), title="strategy", ncols=3)
    fig.suptitle(
        f"loading on {backend}: time to load P parents with {fanout} children each\n"
        "(labels: statements per load at the largest P; lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    layout(fig)
    return cast("Figure", fig)


def _times_fastest(bench: BenchmarkResult, fastest: BenchmarkResult) -> str:
    """`6.6×`, with its interval where the result has one: `6.6× (6.1-7.0)`."""
    value = summary.ratio_of(bench, fastest)
    assert value is not None
    if value.low is None or value.high is None:
        return f"{value.value:.1f}×"
    return f"{value.value:.1f}× ({value.low:.1f}-{value.high:.1f})"


def answer(result: ResultFile) -> str:
    backend = loading_backend(result)
    benches = verified(
        [b for b in result.benchmarks if b.question == "loading" and b.backend == backend]
    )
    shape = (
        "one_to_many" if any(b.extra_info.get("shape") == "one_to_many" for b in benches) else None
    )
    candidates = [b for b in benches if b.extra_info.get("shape") == shape] if shape else benches
    if not candidates:
        return "No verified loading result in this run."
    parents = max(int(b.extra_info["parents"]) for b in candidates)
    at = [b for b in candidates if int(b.extra_info["parents"]) == parents]
    fanout = max(int(b.extra_info["fanout"]) for b in at)
    at = [b for b in at if int(b.extra_info["fanout"]) == fanout]
    ranked = sorted(at, key=lambda b: b.median)
    fastest = ranked[0]
    lazy = next((b for b in at if b.extra_info.get("strategy") == "lazy"), None)
    children = "child" if fanout == 1 else "children"
    what = (
        f"loading {parents:,} parents with {fanout:,} {children} each "
        f"({str(fastest.extra_info['shape']).replace('_', '-')}) on {backend} {where(result)}"
    )
    name = fastest.extra_info["strategy"]
    # the strategies no difference separates from the fastest share the lead
    tied = [b for b in ranked[1:] if not summary.differs(b, fastest)]
    if tied:
        names = ", ".join(str(b.extra_info["strategy"]) for b in [fastest, *tied])
        lead = (
            f"{names} were the fastest strategies ({format_time(fastest.median)}; "
            f"{summary.tie_phrase(tied[-1], fastest)})"
        )
    else:
        lead = f"{name} was the fastest strategy ({format_time(fastest.median)})"
    if lazy is None or lazy is fastest or lazy in tied:
        return f"For {what}, {lead}."
    value = summary.ratio_of(lazy, fastest)
    assert value is not None
    by = times(value.value) if not value.known else summary.format_ratio_interval(value)
    return (
        f"For {what}, {lead}; lazy loading took {by} its time "
        f"({format_time(lazy.median)}; "
        f"{statement_count(fastest.extra_info.get('statements'))} against "
        f"{lazy.extra_info.get('statements'):,})."
    )


def figures(result: ResultFile) -> list[tuple[str, Figure | None]]:
    backend = loading_backend(result)
    return [] if backend is None else [(f"loading-{backend}", loading_figure(result, backend))]
