"""Charts drawn from result files alone: one per question, plus compare and history.

Every chart is PNG and SVG, uses the Okabe-Ito palette (safe for the common colour-vision
deficiencies) with markers or line styles as a second cue, labels its axes with units, and
carries a footnote naming the machine, servers, drivers, RTT, profile and date of its run.
Plotting never measures: the result file is all it reads.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlabench import files, summary
from sqlabench.errors import SqlabenchError
from sqlabench.results import BenchmarkResult, ResultFile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sqlabench.compare import Comparison
    from sqlabench.history import History

# Okabe & Ito (2008), "Color Universal Design": distinguishable with any common colour deficiency
OKABE_ITO = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
REGRESSION_COLOUR = "#D55E00"
IMPROVEMENT_COLOUR = "#0072B2"
UNCHANGED_COLOUR = "#8C8C8C"
QUESTIONS = ("engines", "loading", "pools", "bulk_insert")
BACKEND_ORDER = ("sqlite", "aiosqlite", "psycopg", "psycopg_async", "asyncpg")
LAYER_ORDER = ("raw", "core", "orm")
LOADING_STRATEGIES = (
    "lazy", "immediateload", "subqueryload", "selectinload", "joinedload", "contains_eager",
)  # fmt: skip
MAX_FOREST_ROWS = 40


@dataclass
class Charts:
    """What a plot call wrote and what it left out (with the reason)."""

    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    by_question: dict[str, list[Path]] = field(default_factory=dict)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 9,
            "axes.titlesize": 10,
            "svg.hashsalt": "sqlabench",
        }
    )
    return plt


def footnote(result: ResultFile) -> str:
    """The run's provenance in one or two lines: no URL, so no password can reach a chart."""
    info = result.info
    servers = sorted({f"{b.server} {b.server_version.split(' ')[0]}" for b in info.backends})
    drivers = sorted({f"{b.driver} {b.driver_version}" for b in info.backends})
    if info.rtt_ms:
        rtt = f"RTT +{info.rtt_ms:g} ms injected"
    elif any(b.extra_info.get("rtt_ms") for b in result.benchmarks):
        rtt = "latency injected where a title says so"  # the pools grid's own variant
    else:
        rtt = "no injected latency"
    date = info.started[:10]
    passes = f", {info.repeat} passes" if info.repeat > 1 else ""
    return (
        f"{info.machine}; {', '.join(servers)}; drivers {', '.join(drivers)}\n"
        f"Python {info.python}, SQLAlchemy {info.sqlalchemy}; {rtt}; {info.profile} profile"
        f"{passes}; run {date}, sqlabench {info.suite_commit}"
    )


def _unit(seconds: Iterable[float]) -> tuple[float, str]:
    """A scale and unit that keep the largest value readable."""
    top = max(seconds, default=0.0)
    if top >= 1:
        return 1.0, "s"
    if top >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def _quartiles(bench: BenchmarkResult) -> tuple[float, float]:
    stats = bench.stats
    if "q1" in stats and "q3" in stats:
        return float(stats["q1"]), float(stats["q3"])
    return bench.median, bench.median


def order(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    rank: dict[str, int] = {}
    for i, v in enumerate(preferred):
        rank.setdefault(v, i)
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), seen.index(v)))


def _backend_label(result: ResultFile, name: str, sep: str = "\n") -> str:
    """`psycopg (sync)`: the backend and its mode, as the run recorded them."""
    mode = next((b.mode for b in result.info.backends if b.name == name), "")
    return f"{name}{sep}({mode})" if mode else name


def _save(fig: Figure, result: ResultFile | None, out: Path, stem: str) -> list[Path]:
    if result is not None:
        fig.text(0.01, 0.005, footnote(result), fontsize=7, color="#444444", va="bottom")
    written = []
    for suffix in ("png", "svg"):
        final = out / f"{stem}.{suffix}"
        meta = {"Date": None} if suffix == "svg" else None
        draw = partial(fig.savefig, format=suffix, metadata=meta)
        files.write_atomic(final, draw, overwrite=True)  # a chart is derived: redrawing replaces
        written.append(final)
    _pyplot().close(fig)
    return written


def save_figure(fig: Figure, result: ResultFile | None, out: Path, stem: str) -> list[Path]:
    """Write a figure as PNG and SVG (replacing charts of that name), with the run's footnote."""
    return _save(fig, result, out, stem)


def _layout(
    fig: Figure, top_inches: float = 0.85, bottom_inches: float = 0.45, right: float = 1.0
) -> None:
    """Room, in inches, for the two-line title above and the footnote below the panels."""
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, bottom_inches / height, right, 1))
    # tight_layout leaves a suptitle's room to chance; panel titles must start below it
    top = fig.subplotpars.top
    fig.subplots_adjust(top=min(top, 1 - (top_inches + 0.25) / height))


def _plain_log_ticks(axis: Any) -> None:
    """Log axes labelled 2, 5, 10, 200 rather than 2×10^0: readers compare numbers, not powers."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))


def _benches(result: ResultFile, question: str) -> list[BenchmarkResult]:
    return [b for b in result.benchmarks if b.question == question]


def _legend(fig: Figure, axes: Any, used: int, title: str, ncols: int = 1) -> None:
    """One legend for every panel's series, in the first empty panel if there is one."""
    entries: dict[str, Any] = {}
    for ax in list(axes.flat)[:used]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    spare = list(axes.flat)[used:]
    if spare:
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(
            entries.values(), entries.keys(), loc="center", frameon=False, title=title,
            ncols=ncols,
        )  # fmt: skip
    else:
        fig.legend(
            entries.values(), entries.keys(), loc="upper right", frameon=False,
            ncols=max(ncols, min(len(entries), 4)), fontsize=8, title=title,
        )  # fmt: skip


# --- engines ----------------------------------------------------------------------------------


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
    benches = _benches(result, "engines")
    if not benches:
        return None
    plt = _pyplot()
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
        scale, unit = _unit(_quartiles(b)[1] for b in present)
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
                q1, q3 = _quartiles(bench)
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
        ax.set_xticks(range(len(backends)), [_backend_label(result, b) for b in backends])
        ax.set_title(workload)
        ax.set_ylabel(f"median per operation ({unit})")
        ax.margins(y=0.25)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.set_visible(False)
    _legend(fig, axes, len(workloads), title="layer")
    fig.suptitle(
        "engines: time per operation by layer (bars: median, whiskers: interquartile range,\n"
        "labels: × the raw driver on the same backend; lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    _layout(fig)
    return cast("Figure", fig)


# --- loading ----------------------------------------------------------------------------------


def loading_backend(result: ResultFile) -> str | None:
    """The backend the loading chart shows: the first PostgreSQL one, else the first."""
    names = order((b.backend for b in _benches(result, "loading")), BACKEND_ORDER)
    postgres = [n for n in names if n.startswith(("psycopg", "asyncpg"))]
    chosen = postgres or names
    return chosen[0] if chosen else None


def loading_figure(result: ResultFile, backend: str) -> Figure | None:
    benches = [b for b in _benches(result, "loading") if b.backend == backend]
    if not benches:
        return None
    fanouts = defaultdict(set)
    for b in benches:
        fanouts[int(b.extra_info["fanout"])].add(int(b.extra_info["parents"]))
    fanout = max(fanouts, key=lambda f: (len(fanouts[f]), f))
    benches = [b for b in benches if int(b.extra_info["fanout"]) == fanout]
    plt = _pyplot()
    shapes = order((str(b.extra_info["shape"]) for b in benches), ())
    strategies = order((str(b.extra_info["strategy"]) for b in benches), LOADING_STRATEGIES)
    columns = 2 if len(shapes) > 1 else 1
    rows = math.ceil(len(shapes) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(6.0 * columns, 3.6 * rows + 0.9), squeeze=False
    )
    scale, unit = _unit(b.median for b in benches)
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
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
        ax.set_title(shape.replace("_", " "))
        ax.set_xlabel("parents loaded (log)")
        ax.set_ylabel(f"median per load ({unit}, log)")
        ax.margins(x=0.18)
    for ax in list(axes.flat)[len(shapes) :]:
        ax.set_visible(False)
    _legend(fig, axes, len(shapes), title="strategy", ncols=3)
    fig.suptitle(
        f"loading on {backend}: time to load P parents with {fanout} children each\n"
        "(labels: statements per load at the largest P; lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    _layout(fig)
    return cast("Figure", fig)


# --- pools ------------------------------------------------------------------------------------


def pools_figures(result: ResultFile) -> list[tuple[str, Figure | None]]:
    """`pools` at the largest RTT the points ran at (where the pool is the limit), and
    `pools-rtt<X>ms` at each other."""
    rtts = sorted({c.rtt_ms for c in summary.pool_curves(result)}, reverse=True)
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
    curves = summary.pool_curves(result)
    if rtt_ms is None and curves:
        rtt_ms = max(c.rtt_ms for c in curves)
    curves = [c for c in curves if c.rtt_ms == rtt_ms]
    if not curves:
        return None
    plt = _pyplot()
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
                label=_backend_label(result, curve.backend, " "),
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
        _plain_log_ticks(bottom.yaxis)
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
    _layout(fig, right=0.80)
    return cast("Figure", fig)


# --- bulk_insert ------------------------------------------------------------------------------


def bulk_insert_figure(result: ResultFile) -> Figure | None:
    benches = _benches(result, "bulk_insert")
    if not benches:
        return None
    rows = max(int(b.extra_info["rows"]) for b in benches)
    benches = [b for b in benches if int(b.extra_info["rows"]) == rows]
    plt = _pyplot()
    backends = order((b.backend for b in benches), BACKEND_ORDER)
    labels = order((summary.bulk_label(b.extra_info) for b in benches), ())
    rate = {(b.backend, summary.bulk_label(b.extra_info)): b for b in benches}

    # one order for every panel so strategies line up across them: fastest on average first
    def mean_log_share(label: str) -> float:
        shares = [
            math.log(max(float(b.extra_info.get("ratio_to_ceiling") or 0), 1e-9))
            for (_, name), b in rate.items()
            if name == label
        ]
        return -sum(shares) / len(shares)

    labels.sort(key=mean_log_share)
    fig, axes = plt.subplots(
        1, len(backends), figsize=(2.9 * len(backends) + 2.2, 0.32 * len(labels) + 2.2),
        squeeze=False, sharey=True,
    )  # fmt: skip
    top = max(float(b.extra_info.get("rows_per_s", 0)) for b in benches)
    for ax, backend in zip(axes[0], backends, strict=True):
        ys, widths, colours, hatches = [], [], [], []
        ceiling = None
        for y, label in enumerate(labels):
            bench = rate.get((backend, label))
            if bench is None:
                continue
            value = float(bench.extra_info.get("rows_per_s", 0))
            ys.append(y)
            widths.append(value)
            is_ceiling = bool(bench.extra_info.get("ceiling"))
            colours.append(OKABE_ITO[1] if is_ceiling else OKABE_ITO[0])
            hatches.append("//" if is_ceiling else "")
            if is_ceiling:
                ceiling = value
        bars = ax.barh(ys, widths, color=colours, hatch=hatches, edgecolor="white")
        ax.bar_label(bars, labels=[_si(w) for w in widths], fontsize=6.5, padding=2)
        if ceiling:
            ax.axvline(ceiling, color=OKABE_ITO[1], linestyle="--", linewidth=1)
        ax.set_xscale("log")
        # narrow panels: decades only, as 10k, 100k, 1M
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(right=top * 6)
        ax.set_title(_backend_label(result, backend, " "))
        ax.set_xlabel("rows per second (log)")
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(range(len(labels)), labels)
    axes[0][0].invert_yaxis()
    fig.suptitle(
        f"bulk_insert: {rows:,} rows, rows per second by strategy (higher is faster);\n"
        "hatched bar and dashed line: the ceiling (COPY on PostgreSQL, the driver's "
        "executemany on SQLite)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    _layout(fig)
    return cast("Figure", fig)


def _si(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


# --- compare and history ----------------------------------------------------------------------


def compare_figure(result: Comparison, title: str) -> Figure | None:
    """A forest plot: each benchmark's ratio with its 95% interval; regressions in colour."""
    changes = [c for c in result.changes if math.isfinite(c.ratio) and c.ratio > 0]
    if not changes:
        return None
    flagged = [c for c in changes if c.verdict != "unchanged"]
    rest = sorted(
        (c for c in changes if c.verdict == "unchanged"), key=lambda c: -abs(math.log(c.ratio))
    )
    shown = (flagged + rest)[:MAX_FOREST_ROWS]
    shown.sort(key=lambda c: c.ratio)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(shown) + 2.4))  # three title lines
    colour = {
        "slower": REGRESSION_COLOUR, "more-work": REGRESSION_COLOUR,
        "faster": IMPROVEMENT_COLOUR, "less-work": IMPROVEMENT_COLOUR,
        "slower-ungated": UNCHANGED_COLOUR, "faster-ungated": UNCHANGED_COLOUR,
        "unchanged": UNCHANGED_COLOUR,
    }  # fmt: skip
    marker = {
        "slower": "s", "more-work": "X", "faster": "D", "less-work": "P", "unchanged": "o",
        "slower-ungated": ">", "faster-ungated": "<",
    }  # fmt: skip
    for y, c in enumerate(shown):
        low = c.ci_low if math.isfinite(c.ci_low) else c.ratio
        high = c.ci_high if math.isfinite(c.ci_high) else c.ratio
        ax.plot([low, high], [y, y], color=colour[c.verdict], linewidth=1.5)
        ax.plot(c.ratio, y, marker[c.verdict], color=colour[c.verdict], markersize=5)
    ax.axvline(1.0, color="#000000", linewidth=0.8)
    band = (1 / (1 + result.threshold), 1 + result.threshold)
    ax.axvspan(*band, color="#DDDDDD", alpha=0.5)
    ax.set_xscale("log")
    ends = [x for c in shown for x in (c.ci_low, c.ci_high, c.ratio) if math.isfinite(x) and x > 0]
    ax.set_xlim(min([*ends, band[0]]) / 1.05, max([*ends, band[1]]) * 1.05)
    _plain_log_ticks(ax.xaxis)
    ax.set_yticks(range(len(shown)), [c.name for c in shown], fontsize=7)
    ax.set_xlabel("current / baseline, ratio of medians with 95% interval (log; > 1 is slower)")
    omitted = len(changes) - len(shown)
    ax.set_title(
        f"{title}\n{len(result.regressions)} regression(s), {len(result.improvements)} faster, "
        f"of {len(changes)}" + (f" ({omitted} unchanged not shown)" if omitted else "")
        + f"\ngrey band: ±{result.threshold:.0%} threshold; squares/crosses: regressions, "
        "diamonds: improvements",
        loc="left", fontsize=9,
    )  # fmt: skip
    ax.grid(axis="y", visible=False)
    _layout(fig, top_inches=1.05)
    return cast("Figure", fig)


def history_figure(history: History) -> Figure | None:
    """Each benchmark's median over the runs, as a ratio to its first run, a panel per question."""
    if len(history.runs) < 2:
        return None
    by_question: dict[str, list[tuple[str, list[float | None]]]] = defaultdict(list)
    for name, medians in history.series.items():
        question = name.removeprefix("test_").split("[")[0]
        by_question[question].append((name, medians))
    plt = _pyplot()
    questions = order(by_question, QUESTIONS)
    fig, axes = plt.subplots(
        len(questions), 1, figsize=(8, 2.6 * len(questions) + 0.8), squeeze=False, sharex=True
    )
    xs = list(range(len(history.runs)))
    for ax, question in zip(axes[:, 0], questions, strict=True):
        ratios_at: list[list[float]] = [[] for _ in xs]
        for _, medians in by_question[question]:
            first = next((m for m in medians if m), None)
            if not first:
                continue
            points = [(x, m / first) for x, m in zip(xs, medians, strict=True) if m]
            ax.plot(*zip(*points, strict=True), color=OKABE_ITO[4], alpha=0.25, linewidth=0.8)
            for x, r in points:
                ratios_at[x].append(r)
        middle = [(x, sorted(r)[len(r) // 2]) for x, r in zip(xs, ratios_at, strict=True) if r]
        if middle:
            ax.plot(*zip(*middle, strict=True), color=OKABE_ITO[0], linewidth=2, marker="o",
                    label="median of the benchmarks")  # fmt: skip
        ax.axhline(1.0, color="#000000", linewidth=0.8)
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        ax.set_ylabel("× first run (log)")
        ax.set_title(f"{question}: {len(by_question[question])} benchmarks", loc="left")
    axes[-1, 0].set_xticks(xs, history.runs, rotation=30, ha="right", fontsize=7)
    axes[0, 0].legend(loc="upper left", frameon=False, fontsize=8)
    fig.suptitle(
        "history: each benchmark's median per run, relative to its first run (lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    _layout(fig)
    return cast("Figure", fig)


# --- entry points -----------------------------------------------------------------------------


def _prepare_out(directory: str | os.PathLike[str]) -> Path:
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SqlabenchError(f"cannot write charts to {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise SqlabenchError(f"cannot write charts to {out}: not writable")
    return out


def newest_with(results: Sequence[ResultFile], question: str) -> ResultFile | None:
    having = [r for r in results if any(b.question == question for b in r.benchmarks)]
    return max(having, key=lambda r: r.info.started) if having else None


QUESTION_FIGURES: dict[str, Callable[[ResultFile], list[tuple[str, Figure | None]]]] = {
    "engines": lambda r: [("engines", engines_figure(r))],
    "loading": lambda r: [
        (f"loading-{b}", loading_figure(r, b)) for b in [loading_backend(r)] if b is not None
    ],
    "pools": pools_figures,
    "bulk_insert": lambda r: [("bulk_insert", bulk_insert_figure(r))],
}


def plot_results(results: Sequence[ResultFile], directory: str | os.PathLike[str]) -> Charts:
    """The question charts (each from the newest run that has it), then compare and history."""
    if not results:
        raise SqlabenchError("no result files given")
    out = _prepare_out(directory)
    charts = Charts()
    for question in QUESTIONS:
        source = newest_with(results, question)
        if source is None:
            charts.notes.append(f"{question}: no data in the given results, no chart")
            continue
        for stem, fig in QUESTION_FIGURES[question](source):
            if fig is None:
                charts.notes.append(f"{question}: nothing to draw")
                continue
            paths = _save(fig, source, out, stem)
            charts.written += paths
            charts.by_question.setdefault(question, []).extend(paths)
    if len(results) >= 2:
        from sqlabench import compare, history

        ordered = sorted(results, key=lambda r: r.info.started)
        outcome = compare.compare(ordered[-2], ordered[-1])
        fig = compare_figure(outcome, "compare: newest run against the one before")
        if fig is not None:
            paths = _save(fig, ordered[-1], out, "compare")
            charts.written += paths
            charts.by_question["compare"] = paths
        else:
            charts.notes.append("compare: the two newest runs share no benchmark, no chart")
        fig = history_figure(history.series(ordered))
        if fig is not None:
            paths = _save(fig, ordered[-1], out, "history")
            charts.written += paths
            charts.by_question["history"] = paths
    return charts
