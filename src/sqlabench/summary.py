"""Summary tables computed from a result file alone (the CLI prints them after a run)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlabench.results import BenchmarkResult, ResultFile


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str] = field(default_factory=list)


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def ratio(bench: BenchmarkResult | None, base: BenchmarkResult | None) -> float | None:
    return bench.median / base.median if bench and base else None


def iqr(bench: BenchmarkResult) -> float | None:
    data = bench.data
    if len(data) < 4:
        return None
    q1, _, q3 = statistics.quantiles(data, n=4)
    return q3 - q1


def engines_tables(result: ResultFile) -> list[Table]:
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
                format_ratio(ratio(orm, raw)), format_ratio(ratio(core, raw)),
                "yes" if verified else "NO",
            )
        )  # fmt: skip
    return [
        Table(
            "engines: median time per operation",
            ("backend", "mode", "workload", "stmts o/c/r", "orm", "core", "raw",
             "orm/raw", "core/raw", "verified"),
            rows,
            ["Ratios compare medians measured in this run on this machine; lower is faster."],
        )
    ]  # fmt: skip


LOADING_STRATEGIES = (
    "lazy", "selectinload", "joinedload", "subqueryload", "immediateload", "contains_eager",
)  # fmt: skip


def loading_tables(result: ResultFile) -> list[Table]:
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
        verified = [b.median for b in by_strategy.values() if b.extra_info.get("verified")]
        fastest = min(verified or [b.median for b in by_strategy.values()])
        cells = []
        for strategy in LOADING_STRATEGIES:
            bench = by_strategy.get(strategy)
            if bench is None:
                cells.append("-")
                continue
            info = bench.extra_info
            cells.append(
                f"{format_time(bench.median)}{'' if info.get('verified') else ' UNVERIFIED'}\n"
                f"{bench.median / fastest:.1f}×\n"
                f"{info.get('statements')} st, {info.get('rows_fetched')} r"
            )
        rows.append((backend, shape, f"{parents}×{fanout}", *cells))
    return [
        Table(
            "loading: median time per load / × the fastest strategy / statements (st), rows (r)",
            ("backend", "shape", "P×F", *LOADING_STRATEGIES),
            rows,
            [
                "P parents with F children each; every relationship of the shape is touched.",
                "Ratios compare medians measured in this run on this machine; 1.0× is fastest.",
            ],
        )
    ]


def bulk_insert_tables(result: ResultFile) -> list[Table]:
    """Per backend and size: the strategies as a ladder, fastest first, against the ceiling."""
    groups: dict[tuple[str, int], list[BenchmarkResult]] = defaultdict(list)
    for b in result.benchmarks:
        if b.question == "bulk_insert":
            groups[(b.backend, int(b.extra_info["rows"]))].append(b)
    if not groups:
        return []
    rows: list[tuple[str, ...]] = []
    for (backend, count), benches in groups.items():
        for b in sorted(benches, key=lambda x: x.median):
            info = b.extra_info
            label = bulk_label(info)
            ratio = info.get("ratio_to_ceiling")
            rows.append(
                (
                    backend, f"{count:,}", label + (" ◆" if info.get("ceiling") else ""),
                    f"{float(info.get('rows_per_s', 0)):,.0f}",
                    "-" if ratio is None else f"{float(ratio):.2f}",
                    str(info.get("statements", "-")), format_time(b.median),
                    str(info.get("peak_rss_mb", "-")),
                    "yes" if info.get("verified") else "NO",
                )
            )  # fmt: skip
    return [
        Table(
            "bulk_insert: rows per second, fastest first; ◆ marks the ceiling (COPY, or the "
            "raw executemany on SQLite)",
            ("backend", "rows", "strategy", "rows/s", "× ceiling", "stmts", "median",
             "peak MiB", "verified"),
            rows,
            ["stmts: statements the server ran per insert (an executemany counts once per row)."],
        )
    ]  # fmt: skip


def bulk_label(info: dict[str, object]) -> str:
    """A bulk_insert strategy, with its page size when it is not SQLAlchemy's default."""
    page = info.get("page_size")
    return str(info.get("strategy")) + (f" (page {page})" if page and page != 1000 else "")


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


def _spread(info: dict[str, Any]) -> float:
    rounds = [float(x) for x in info.get("throughput_rps_rounds") or []]
    median = float(info.get("throughput_rps") or 0)
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
            nulls[key] = float(info["throughput_rps"])
        elif not info.get("max_overflow") and float(info.get("pool_timeout") or 30) >= 1:
            groups[key].append(b)
    curves = []
    for (backend, concurrency, rtt), points in groups.items():
        points.sort(key=lambda b: int(b.extra_info["pool_size"]))
        infos = [b.extra_info for b in points]
        rps = tuple(float(i["throughput_rps"]) for i in infos)
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


def pools_tables(result: ResultFile) -> list[Table]:
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
            -float(b.extra_info.get("throughput_rps", 0)),
        ),
    )  # fmt: skip
    for b in ordered:
        i = b.extra_info
        lat, wait = i["latency_ms"], i["pool_wait_ms"]
        seen = i.get("rtt_seen_ms") or {}
        grid_rows.append(
            (
                f"{pool_rtt(result, i):g}", b.backend, str(i["concurrency"]), pool_label(i),
                f"{float(i['throughput_rps']):,.0f}",
                f"{lat['p50']:.1f}", f"{lat['p99']:.1f}", f"{wait['p99']:.1f}",
                str(i.get("timeouts")), str(i.get("connections")),
                f"{i['client_cpu']:.2f}" if "client_cpu" in i else "-",
                f"{i['server_cpu']:.2f}" if i.get("server_cpu") is not None else "-",
                f"{seen['p50']:.2f} / {seen['p99']:.2f}" if "p50" in seen else "-",
                "yes" if i.get("verified") else "NO",
            )
        )  # fmt: skip
    return [
        Table(
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
        Table(
            "pools: every grid point (latency includes the wait for a checkout)",
            ("RTT ms", "backend", "clients", "pool", "req/s", "p50 ms", "p99 ms", "wait p99 ms",
             "timeouts", "server conns", "client cores", "server cores", "RTT seen p50/p99 ms",
             "verified"),
            grid_rows,
        ),
    ]  # fmt: skip


def generic_table(result: ResultFile, question: str) -> Table:
    rows: list[tuple[str, ...]] = [
        (
            b.name,
            format_time(b.median),
            format_time(iqr(b)),
            str(b.extra_info.get("statements", "-")),
            "yes" if b.extra_info.get("verified") else "NO",
        )
        for b in result.benchmarks
        if b.question == question
    ]
    return Table(
        f"{question}: median per operation",
        ("benchmark", "median", "IQR", "stmts", "verified"),
        rows,
    )


SUMMARIES: dict[str, Callable[[ResultFile], list[Table]]] = {
    "engines": engines_tables,
    "loading": loading_tables,
    "bulk_insert": bulk_insert_tables,
    "pools": pools_tables,
}


def tables(result: ResultFile) -> list[Table]:
    found = defaultdict(list)
    for b in result.benchmarks:
        found[b.question].append(b)
    out: list[Table] = []
    for question in result.info.questions:
        if question not in found:
            continue
        summarize = SUMMARIES.get(question)
        out.extend(summarize(result) if summarize else [generic_table(result, question)])
    return out
