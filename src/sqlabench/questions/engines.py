"""Sync or async engine, which driver, and what does the ORM cost over Core and over the raw driver?

Every workload runs on every backend in three layers: `orm` (a Session), `core` (a Connection)
and `raw` (the driver alone, no SQLAlchemy: the ceiling). The read workloads (`pk_lookup`,
`filter_all`, `count`, `join`) run on one held connection inside one open transaction in every
layer, so no layer pays for a pool checkout or a BEGIN the others skip; the ORM opens a fresh
Session on that connection per operation, so it builds new objects every time rather than
finding them in an identity map. `request` is one unit of work as a web handler does it: check a
connection out (the raw layer holds one: it has no pool), load a user, change its name, commit,
and build the response from the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from sqlabench import summary
from sqlabench.backends import (
    Backend,
    Target,
    placeholders,
    raw_connect,
    raw_connect_async,
)
from sqlabench.database import seed, setup_engine
from sqlabench.measure import (
    Outcome,
    StatementCounter,
    check,
    check_statements,
    measure,
    measure_async,
)
from sqlabench.models import (
    DataSize,
    Post,
    User,
    active_users,
    post_row,
    seeded_ids,
    user_row,
)
from sqlabench.plot import (
    BACKEND_ORDER,
    OKABE_ITO,
    backend_label,
    benches_of,
    interval,
    layout,
    legend,
    order,
    pyplot,
    scale_and_unit,
    whiskers,
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
    span,
    verified,
    where,
)  # fmt: skip

if TYPE_CHECKING:
    from matplotlib.figure import Figure

QUESTION = "engines"
RANK = 1


class EnginesInfo(BenchmarkInfo, total=False):
    """What an engines benchmark records in `extra_info` (its typed record)."""

    workload: str
    layer: str
    page: int | None
    expire_on_commit: bool | None
    statements: int
    rows: int


INFO = EnginesInfo


@dataclass(frozen=True)
class EnginesProfile:
    data: DataSize
    pages: tuple[int, ...]
    """Rows per page for `filter_all` and `join`."""


PROFILES = {
    "smoke": EnginesProfile(DataSize(users=200, posts_per_user=3), pages=(20,)),
    "quick": EnginesProfile(DataSize(users=2_000, posts_per_user=5), pages=(100,)),
    "full": EnginesProfile(DataSize(users=20_000, posts_per_user=10), pages=(10, 100, 1_000)),
}
LAYERS = ("orm", "core", "raw")
IDS_PER_BENCHMARK = 1_000
# request names are unique for the whole process: a name some earlier benchmark already stored
# would let the ORM skip its UPDATE, and the benchmark would time less work than it claims
_request_serial = itertools.count(1)
_WORKER = secrets.token_hex(4)
"""In each written name: the worker processes of a run share one seeded database, and a name
written again unchanged would let the ORM skip its UPDATE (less work, timed as the same)."""

users = cast(Table, User.__table__)
posts = cast(Table, Post.__table__)


@dataclass(frozen=True)
class Case:
    backend: Backend
    layer: str
    workload: str
    page: int | None = None
    expire_on_commit: bool | None = None

    @property
    def id(self) -> str:
        parts = [self.backend.name, self.layer, self.workload]
        if self.page is not None:
            parts.append(str(self.page))
        if self.expire_on_commit is not None:
            parts.append("expire" if self.expire_on_commit else "noexpire")
        return "-".join(parts)

    @property
    def statements(self) -> int:
        """SQL statements one operation must send (transaction control not counted)."""
        if self.workload != "request":
            return 1
        # load + UPDATE, and with expire_on_commit the response reloads the expired user
        return 3 if self.expire_on_commit else 2


def cases(backends: list[Backend], profile: str) -> list[Case]:
    pages = PROFILES[profile].pages
    out: list[Case] = []
    for backend, layer in itertools.product(backends, LAYERS):
        out.append(Case(backend, layer, "pk_lookup"))
        out.extend(Case(backend, layer, "filter_all", page=p) for p in pages)
        out.append(Case(backend, layer, "count"))
        out.extend(Case(backend, layer, "join", page=p) for p in pages)
        if layer == "orm":
            out.extend(Case(backend, layer, "request", expire_on_commit=e) for e in (True, False))
        else:
            out.append(Case(backend, layer, "request"))
    return out


pytest_generate_tests, case = case_parameters(cases)


# --- the workloads, one class per layer and mode ------------------------------------------------


class SyncOrm:
    def __init__(self, engine: Engine, conn: Any) -> None:
        self.engine, self.conn = engine, conn

    def pk_lookup(self, uid: int) -> Any:
        with Session(self.conn) as session:
            return session.execute(select(User).where(User.id == uid)).scalar_one_or_none()

    def filter_all(self, page: int) -> Any:
        with Session(self.conn) as session:
            stmt = select(User).where(User.is_active).order_by(User.id).limit(page)
            return session.execute(stmt).scalars().all()

    def count(self) -> Any:
        with Session(self.conn) as session:
            return session.execute(select(func.count(User.id)).where(User.is_active)).scalar_one()

    def join(self, page: int) -> Any:
        with Session(self.conn) as session:
            stmt = select(User, Post).join(User.posts).order_by(Post.id).limit(page)
            return session.execute(stmt).all()

    def request(self, uid: int, name: str, expire: bool) -> Any:
        with Session(self.engine, expire_on_commit=expire) as session:
            user = session.get(User, uid)
            assert user is not None
            user.name = name
            session.commit()
            return (user.id, user.name, user.email)


class AsyncOrm:
    def __init__(self, engine: AsyncEngine, conn: Any) -> None:
        self.engine, self.conn = engine, conn

    async def pk_lookup(self, uid: int) -> Any:
        async with AsyncSession(self.conn) as session:
            result = await session.execute(select(User).where(User.id == uid))
            return result.scalar_one_or_none()

    async def filter_all(self, page: int) -> Any:
        async with AsyncSession(self.conn) as session:
            stmt = select(User).where(User.is_active).order_by(User.id).limit(page)
            return (await session.execute(stmt)).scalars().all()

    async def count(self) -> Any:
        async with AsyncSession(self.conn) as session:
            stmt = select(func.count(User.id)).where(User.is_active)
            return (await session.execute(stmt)).scalar_one()

    async def join(self, page: int) -> Any:
        async with AsyncSession(self.conn) as session:
            stmt = select(User, Post).join(User.posts).order_by(Post.id).limit(page)
            return (await session.execute(stmt)).all()

    async def request(self, uid: int, name: str, expire: bool) -> Any:
        async with AsyncSession(self.engine, expire_on_commit=expire) as session:
            user = await session.get(User, uid)
            assert user is not None
            user.name = name
            await session.commit()
            if expire:
                # async code cannot lazy-load the expired attributes: it must reload explicitly
                await session.refresh(user)
            return (user.id, user.name, user.email)


class SyncCore:
    def __init__(self, engine: Engine, conn: Any) -> None:
        self.engine, self.conn = engine, conn

    def pk_lookup(self, uid: int) -> Any:
        return self.conn.execute(select(users).where(users.c.id == uid)).one_or_none()

    def filter_all(self, page: int) -> Any:
        stmt = select(users).where(users.c.is_active).order_by(users.c.id).limit(page)
        return self.conn.execute(stmt).all()

    def count(self) -> Any:
        stmt = select(func.count(users.c.id)).where(users.c.is_active)
        return self.conn.execute(stmt).scalar_one()

    def join(self, page: int) -> Any:
        stmt = (
            select(users, posts)
            .join(posts, posts.c.author_id == users.c.id)
            .order_by(posts.c.id)
            .limit(page)
        )
        return self.conn.execute(stmt).all()

    def request(self, uid: int, name: str, expire: bool) -> Any:
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.id == uid)).one()
            conn.execute(update(users).where(users.c.id == uid).values(name=name))
        return (row.id, name, row.email)


class AsyncCore:
    def __init__(self, engine: AsyncEngine, conn: Any) -> None:
        self.engine, self.conn = engine, conn

    async def pk_lookup(self, uid: int) -> Any:
        return (await self.conn.execute(select(users).where(users.c.id == uid))).one_or_none()

    async def filter_all(self, page: int) -> Any:
        stmt = select(users).where(users.c.is_active).order_by(users.c.id).limit(page)
        return (await self.conn.execute(stmt)).all()

    async def count(self) -> Any:
        stmt = select(func.count(users.c.id)).where(users.c.is_active)
        return (await self.conn.execute(stmt)).scalar_one()

    async def join(self, page: int) -> Any:
        stmt = (
            select(users, posts)
            .join(posts, posts.c.author_id == users.c.id)
            .order_by(posts.c.id)
            .limit(page)
        )
        return (await self.conn.execute(stmt)).all()

    async def request(self, uid: int, name: str, expire: bool) -> Any:
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(users).where(users.c.id == uid))).one()
            await conn.execute(update(users).where(users.c.id == uid).values(name=name))
        return (row.id, name, row.email)


class RawSql:
    """The raw layer's SQL, in the backend's paramstyle; the same queries SQLAlchemy sends."""

    def __init__(self, backend: Backend) -> None:
        cols = "users.id, users.name, users.email, users.is_active"
        self.pk_lookup = placeholders(backend, f"SELECT {cols} FROM users WHERE users.id = {{}}")
        self.filter_all = placeholders(
            backend,
            f"SELECT {cols} FROM users WHERE users.is_active ORDER BY users.id LIMIT {{}}",
        )
        self.count = "SELECT count(users.id) FROM users WHERE users.is_active"
        self.join = placeholders(
            backend,
            f"SELECT {cols}, posts.id, posts.title, posts.author_id FROM users "
            "JOIN posts ON posts.author_id = users.id ORDER BY posts.id LIMIT {}",
        )
        self.update_name = placeholders(backend, "UPDATE users SET name = {} WHERE users.id = {}")


class SyncRaw:
    """sqlite3 and psycopg share the DB-API shape used here: conn.execute(sql, params)."""

    def __init__(self, conn: Any, sql: RawSql, counter: StatementCounter) -> None:
        self.conn, self.sql, self.counter = conn, sql, counter

    def pk_lookup(self, uid: int) -> Any:
        self.counter.count += 1
        return self.conn.execute(self.sql.pk_lookup, (uid,)).fetchone()

    def filter_all(self, page: int) -> Any:
        self.counter.count += 1
        return self.conn.execute(self.sql.filter_all, (page,)).fetchall()

    def count(self) -> Any:
        self.counter.count += 1
        return self.conn.execute(self.sql.count).fetchone()[0]

    def join(self, page: int) -> Any:
        self.counter.count += 1
        return self.conn.execute(self.sql.join, (page,)).fetchall()

    def request(self, uid: int, name: str, expire: bool) -> Any:
        conn = self.conn
        row = conn.execute(self.sql.pk_lookup, (uid,)).fetchone()
        conn.execute(self.sql.update_name, (name, uid))
        conn.commit()
        self.counter.count += 2
        return (row[0], name, row[2])


class AsyncDbapiRaw:
    """aiosqlite and psycopg's AsyncConnection: cursor = await conn.execute(sql, params)."""

    def __init__(self, conn: Any, sql: RawSql, counter: StatementCounter) -> None:
        self.conn, self.sql, self.counter = conn, sql, counter

    async def pk_lookup(self, uid: int) -> Any:
        self.counter.count += 1
        return await (await self.conn.execute(self.sql.pk_lookup, (uid,))).fetchone()

    async def filter_all(self, page: int) -> Any:
        self.counter.count += 1
        return await (await self.conn.execute(self.sql.filter_all, (page,))).fetchall()

    async def count(self) -> Any:
        self.counter.count += 1
        return (await (await self.conn.execute(self.sql.count)).fetchone())[0]

    async def join(self, page: int) -> Any:
        self.counter.count += 1
        return await (await self.conn.execute(self.sql.join, (page,))).fetchall()

    async def request(self, uid: int, name: str, expire: bool) -> Any:
        conn = self.conn
        row = await (await conn.execute(self.sql.pk_lookup, (uid,))).fetchone()
        await conn.execute(self.sql.update_name, (name, uid))
        await conn.commit()
        self.counter.count += 2
        return (row[0], name, row[2])


class AsyncpgRaw:
    """asyncpg: prepared, cached statements, and explicit transactions as SQLAlchemy opens."""

    def __init__(self, conn: Any, sql: RawSql, counter: StatementCounter) -> None:
        self.conn, self.sql, self.counter = conn, sql, counter

    async def pk_lookup(self, uid: int) -> Any:
        self.counter.count += 1
        return await self.conn.fetchrow(self.sql.pk_lookup, uid)

    async def filter_all(self, page: int) -> Any:
        self.counter.count += 1
        return await self.conn.fetch(self.sql.filter_all, page)

    async def count(self) -> Any:
        self.counter.count += 1
        return await self.conn.fetchval(self.sql.count)

    async def join(self, page: int) -> Any:
        self.counter.count += 1
        return await self.conn.fetch(self.sql.join, page)

    async def request(self, uid: int, name: str, expire: bool) -> Any:
        conn = self.conn
        transaction = conn.transaction()
        await transaction.start()
        row = await conn.fetchrow(self.sql.pk_lookup, uid)
        await conn.execute(self.sql.update_name, name, uid)
        await transaction.commit()
        self.counter.count += 2
        return (row[0], name, row[2])


# --- what each workload must return ------------------------------------------------------------


def as_user(value: Any) -> tuple[Any, ...]:
    if isinstance(value, User):
        return (value.id, value.name, value.email, value.is_active)
    row = tuple(value)
    return (row[0], row[1], row[2], bool(row[3]))


def as_join_row(value: Any) -> tuple[Any, ...]:
    row = tuple(value)
    if isinstance(row[0], User):
        post = row[1]
        return (*as_user(row[0]), post.id, post.title, post.author_id)
    return (*as_user(row[:4]), *row[4:7])


class Plan:
    """The operation to time for a case, the data it draws, and the check of what it returned."""

    def __init__(self, case: Case, size: DataSize) -> None:
        self.case = case
        self.size = size
        reserved = max(10, size.users // 20)
        # request writes only to the top `reserved` users, so reads always see seeded values
        self.read_ids = seeded_ids(IDS_PER_BENCHMARK, size.users - reserved, "pk_lookup")
        self.write_ids = [
            size.users - reserved + i for i in seeded_ids(IDS_PER_BENCHMARK, reserved, "request")
        ]
        self.written: dict[int, str] = {}

    def operation(self, layer: Any) -> Any:
        """A no-argument callable (sync or async) running one operation on `layer`."""
        case = self.case
        if case.workload == "pk_lookup":
            ids = itertools.cycle(self.read_ids)
            if case.backend.is_async:

                async def pk_lookup_async() -> Any:
                    uid = next(ids)
                    return uid, await layer.pk_lookup(uid)

                return pk_lookup_async
            return lambda: (uid := next(ids), layer.pk_lookup(uid))
        if case.workload in ("filter_all", "join"):
            method, page = getattr(layer, case.workload), case.page
            return lambda: method(page)
        if case.workload == "count":
            return layer.count
        assert case.workload == "request"
        ids = itertools.cycle(self.write_ids)
        serial = _request_serial
        written = self.written
        expire = bool(case.expire_on_commit)
        if case.backend.is_async:

            async def request_async() -> Any:
                uid = next(ids)
                written[uid] = name = f"user {uid} r{next(serial)} w{_WORKER}"
                return uid, name, await layer.request(uid, name, expire)

            return request_async

        def request() -> Any:
            uid = next(ids)
            written[uid] = name = f"user {uid} r{next(serial)} w{_WORKER}"
            return uid, name, layer.request(uid, name, expire)

        return request

    def verify(self, outcome: Outcome[Any], target: Target) -> EnginesInfo:
        """Check the kept results (and, for writes, the database); return what one op did."""
        case, size = self.case, self.size
        check(bool(outcome.results), "no results were kept to verify")
        statements = check_statements(outcome, case.statements)
        if case.workload == "pk_lookup":
            for uid, user in outcome.results:
                check(user is not None, f"pk_lookup found no user {uid}")
                check(as_user(user) == user_row(uid), f"pk_lookup returned wrong user {uid}")
            rows = 1
        elif case.workload == "filter_all":
            assert case.page is not None
            expected = active_users(size)[: case.page]
            for result in outcome.results:
                check([as_user(u) for u in result] == expected, "filter_all returned wrong rows")
            rows = case.page
        elif case.workload == "count":
            expected_count = len(active_users(size))
            for result in outcome.results:
                check(result == expected_count, f"count returned {result}, not {expected_count}")
            rows = 1
        elif case.workload == "join":
            assert case.page is not None
            expected_join = [
                (*user_row(p[2]), *p) for p in (post_row(i, size) for i in range(1, case.page + 1))
            ]
            for result in outcome.results:
                check([as_join_row(r) for r in result] == expected_join, "join returned wrong rows")
            rows = case.page
        else:
            for uid, name, response in outcome.results:
                check(
                    tuple(response) == (uid, name, user_row(uid)[2]),
                    f"request for user {uid} answered {response!r}",
                )
            self.verify_committed(target)
            rows = 1
        return EnginesInfo(statements=statements, rows=rows)

    def verify_committed(self, target: Target) -> None:
        engine = setup_engine(target)
        try:
            with engine.connect() as conn:
                stored = dict(
                    conn.execute(
                        select(users.c.id, users.c.name).where(users.c.id.in_(list(self.written)))
                    ).all()
                )
        finally:
            engine.dispose()
        check(stored == self.written, "request's committed names are not in the database")


# --- running a case ----------------------------------------------------------------------------


def make_sync_layer(case: Case, target: Target, counter: StatementCounter, stack: Any) -> Any:
    if case.layer == "raw":
        conn = raw_connect(case.backend, target)
        stack.callback(conn.close)
        return SyncRaw(conn, RawSql(case.backend), counter)
    engine = sync_engine(case.backend, target, counter, stack)
    # reads share one open transaction; request checks out its own connections
    conn = held_connection(engine, stack)
    return (SyncOrm if case.layer == "orm" else SyncCore)(engine, conn)


async def make_async_layer(
    case: Case, target: Target, counter: StatementCounter, stack: Any
) -> Any:
    if case.layer == "raw":
        conn = await raw_connect_async(case.backend, target)
        stack.push_async_callback(conn.close)
        sql = RawSql(case.backend)
        if case.backend.raw_api == "asyncpg":
            if case.workload != "request":
                # SQLAlchemy's asyncpg dialect runs every statement inside a transaction
                await conn.execute("BEGIN")
            return AsyncpgRaw(conn, sql, counter)
        return AsyncDbapiRaw(conn, sql, counter)
    engine = await async_engine(case.backend, target, counter, stack)
    conn = await async_held_connection(engine, stack)
    return (AsyncOrm if case.layer == "orm" else AsyncCore)(engine, conn)


def run_sync(benchmark: Any, case: Case, plan: Plan, target: Target) -> EnginesInfo:
    counter = StatementCounter()
    with contextlib.ExitStack() as stack:
        layer = make_sync_layer(case, target, counter, stack)
        outcome = measure(benchmark, plan.operation(layer), counter)
    return plan.verify(outcome, target)


async def run_async(benchmark: Any, case: Case, plan: Plan, target: Target) -> EnginesInfo:
    counter = StatementCounter()
    async with contextlib.AsyncExitStack() as stack:
        layer = await make_async_layer(case, target, counter, stack)
        outcome = await measure_async(benchmark, plan.operation(layer), counter)
    return plan.verify(outcome, target)


def seed_engines(size: DataSize) -> Any:
    return lambda target: seed(target, size)


def test_engines(benchmark: Any, sqlabench_run: RunContext, case: Case) -> None:
    """Time one workload in one layer on one backend; verify what it returned and committed."""
    size = PROFILES[sqlabench_run.profile].data
    target = sqlabench_run.seeded(case.backend, f"{QUESTION}:{size}", seed_engines(size))
    benchmark.group = f"{QUESTION}-{case.workload}"
    benchmark.extra_info.update(
        EnginesInfo(
            question=QUESTION,
            workload=case.workload,
            backend=case.backend.name,
            layer=case.layer,
            mode=case.backend.mode,
            page=case.page,
            expire_on_commit=case.expire_on_commit,
            verified=False,
        )
    )
    plan = Plan(case, size)
    if case.backend.is_async:
        # one event loop for the whole benchmark; operations are timed inside it
        done = asyncio.run(run_async(benchmark, case, plan, target))
    else:
        done = run_sync(benchmark, case, plan, target)
    done["verified"] = True
    benchmark.extra_info.update(done)


# --- tables, chart and answer: read from a result file, never while measuring ---------------

TITLE = "Sync or async engine, ORM, Core or the raw driver?"


def tables(result: ResultFile) -> list[summary.Table]:
    """Per backend and workload: median per layer, and each SQLAlchemy layer's cost over raw."""
    cells: dict[tuple[str, str, str, str], BenchmarkResult] = {}
    order: list[tuple[str, str, str]] = []
    for b in result.benchmarks:
        if b.question != "engines":
            continue
        info = b.extra_info
        workload = str(info["workload"]) + (f" {info['page']}" if info.get("page") else "")
        variant = {True: "expire", False: "noexpire"}.get(info.get("expire_on_commit"), "")  # type: ignore[arg-type]
        key = (b.backend, workload, variant)
        if key not in order:
            order.append(key)
        cells[(b.backend, workload, variant, str(info["layer"]))] = b
    if not cells:
        return []

    def cell(backend: str, workload: str, variant: str, layer: str) -> BenchmarkResult | None:
        return cells.get((backend, workload, variant, layer)) or cells.get(
            (backend, workload, "", layer)
        )

    has_variants = {(b, w) for b, w, v in order if v}
    rows = []
    for backend, workload, variant in order:
        if not variant and (backend, workload) in has_variants:
            continue  # core and raw have no variant: they are shown on each variant's row
        orm, core, raw = (cell(backend, workload, variant, x) for x in ("orm", "core", "raw"))
        label = workload + (f" {variant}" if variant else "")
        mode = next(b for b in (orm, core, raw) if b is not None).extra_info.get("mode", "")
        stmts = "/".join(
            str(b.extra_info.get("statements", "?")) if b else "-" for b in (orm, core, raw)
        )
        verified = all(b.extra_info.get("verified") for b in (orm, core, raw) if b)
        rows.append(
            (
                backend, str(mode), label, stmts,
                *(format_time(b.median if b else None) for b in (orm, core, raw)),
                summary.format_ratio_interval(summary.ratio_of(orm, raw)),
                summary.format_ratio_interval(summary.ratio_of(core, raw)),
                "yes" if verified else "NO",
            )
        )  # fmt: skip
    return [
        summary.Table(
            "engines: median time per operation",
            ("backend", "mode", "workload", "stmts o/c/r", "orm", "core", "raw",
             "orm/raw", "core/raw", "verified"),
            rows,
            ["Ratios compare medians measured in this run on this machine; lower is faster.",
             *summary.interval_note(list(cells.values()))],
        )
    ]  # fmt: skip


def _engines_workload(info: dict[str, Any]) -> str:
    label = str(info.get("workload"))
    if info.get("page"):
        label += f" (page {info['page']})"
    return label


def _engines_series(info: dict[str, Any]) -> str:
    layer = str(info.get("layer"))
    if info.get("expire_on_commit") is False:
        return f"{layer}, no expire"
    return layer


def engines_figure(result: ResultFile) -> Figure | None:
    benches = benches_of(result, "engines")
    if not benches:
        return None
    plt = pyplot()
    workloads = order((_engines_workload(b.extra_info) for b in benches), ())
    backends = order((b.backend for b in benches), BACKEND_ORDER)
    series = order(
        (_engines_series(b.extra_info) for b in benches), ("raw", "core", "orm", "orm, no expire")
    )
    cells = {
        (_engines_workload(b.extra_info), b.backend, _engines_series(b.extra_info)): b
        for b in benches
    }
    columns = 2 if len(workloads) > 1 else 1
    rows = math.ceil(len(workloads) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(6.2 * columns, 3.1 * rows + 0.9), squeeze=False
    )
    width = 0.8 / len(series)
    for ax, workload in zip(axes.flat, workloads, strict=False):
        present = [cells[k] for k in cells if k[0] == workload]
        scale, unit = scale_and_unit(interval(b)[1] for b in present)
        for s_index, name in enumerate(series):
            xs: list[float] = []
            heights: list[float] = []
            low: list[float] = []
            high: list[float] = []
            labels: list[str] = []
            for slot, backend in enumerate(backends):
                bench = cells.get((workload, backend, name))
                if bench is None:
                    continue
                q1, q3 = interval(bench)
                raw = cells.get((workload, backend, "raw"))
                xs.append(slot - 0.4 + width * (s_index + 0.5))
                heights.append(bench.median * scale)
                low.append(max(0.0, (bench.median - q1) * scale))
                high.append(max(0.0, (q3 - bench.median) * scale))
                labels.append(f"{bench.median / raw.median:.1f}×" if raw and name != "raw" else "")
            if not xs:
                continue
            ax.bar(
                xs, heights, width * 0.95, yerr=[low, high], capsize=2,
                color=OKABE_ITO[s_index % len(OKABE_ITO)], label=name,
                error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
            )  # fmt: skip
            for middle, height, above, text in zip(xs, heights, high, labels, strict=True):
                ax.annotate(
                    text, (middle, height + above), textcoords="offset points", xytext=(0, 1.5),
                    ha="center", va="bottom", fontsize=6,
                )  # fmt: skip
        ax.set_xticks(range(len(backends)), [backend_label(result, b) for b in backends])
        ax.set_title(workload)
        ax.set_ylabel(f"median per operation ({unit})")
        ax.margins(y=0.25)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.set_visible(False)
    legend(fig, axes, len(workloads), title="layer")
    fig.suptitle(
        f"engines: time per operation by layer (bars: median, whiskers: {whiskers(benches)},\n"
        "labels: × the raw driver on the same backend; lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    layout(fig)
    return cast("Figure", fig)


def answer(result: ResultFile) -> str:
    benches = verified([b for b in result.benchmarks if b.question == "engines"])
    lookups = {
        (b.backend, str(b.extra_info.get("layer"))): b
        for b in benches
        if b.extra_info.get("workload") == "pk_lookup"
    }
    backends = order({backend for backend, _ in lookups}, BACKEND_ORDER)
    orm = [
        lookups[(b, "orm")].median / lookups[(b, "raw")].median
        for b in backends
        if (b, "orm") in lookups and (b, "raw") in lookups
    ]
    core = [
        lookups[(b, "core")].median / lookups[(b, "raw")].median
        for b in backends
        if (b, "core") in lookups and (b, "raw") in lookups
    ]
    if not orm:
        return "No verified primary-key lookup with both the ORM and the raw driver in this run."
    ranked = sorted(
        (lookups[(b, "orm")] for b in backends if (b, "orm") in lookups), key=lambda b: b.median
    )
    fastest = ranked[0]
    sentence = (
        f"A primary-key lookup through the ORM took {span(orm)} the raw driver's time "
        f"(Core {span(core) if core else 'not measured'}) on {len(orm)} backend(s) "
        f"{where(result)}; "
    )
    if len(ranked) > 1 and not summary.differs(ranked[1], fastest):
        sentence += (
            f"the fastest ORM lookups, on {fastest.backend} and {ranked[1].backend} "
            f"({format_time(fastest.median)}), {summary.tie_phrase(ranked[1], fastest)}"
        )
    else:
        sentence += (
            f"the fastest ORM lookup was on {fastest.backend} ({format_time(fastest.median)})"
        )
    if ("psycopg", "orm") in lookups and ("psycopg_async", "orm") in lookups:
        sentence += ", and " + summary.took(
            lookups[("psycopg_async", "orm")], lookups[("psycopg", "orm")],
            "the async psycopg engine", "the sync one",
        )  # fmt: skip
    return sentence + "."


def figures(result: ResultFile) -> list[tuple[str, Figure | None]]:
    return [("engines", engines_figure(result))]
