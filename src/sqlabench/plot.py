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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlabench import files
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
BACKEND_ORDER = ("sqlite", "aiosqlite", "psycopg", "psycopg_async", "asyncpg")
LAYER_ORDER = ("raw", "core", "orm")
MAX_FOREST_ROWS = 40


@dataclass
class Charts:
    """What a plot call wrote and what it left out (with the reason)."""

    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    by_question: dict[str, list[Path]] = field(default_factory=dict)


def pyplot() -> Any:
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


def scale_and_unit(seconds: Iterable[float]) -> tuple[float, str]:
    """A scale and unit that keep the largest value readable."""
    top = max(seconds, default=0.0)
    if top >= 1:
        return 1.0, "s"
    if top >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def quartiles(bench: BenchmarkResult) -> tuple[float, float]:
    stats = bench.stats
    if "q1" in stats and "q3" in stats:
        return float(stats["q1"]), float(stats["q3"])
    return bench.median, bench.median


def interval(bench: BenchmarkResult) -> tuple[float, float]:
    """A bar's whiskers: the headline's 95% interval over worker processes where the result
    has one, else (one process, older results) the rounds' interquartile range."""
    headline = bench.extra_info.get("time")
    ci95 = headline.get("ci95") if isinstance(headline, dict) else None
    if isinstance(ci95, list) and len(ci95) == 2:
        return float(ci95[0]), float(ci95[1])
    return quartiles(bench)


def whiskers(benches: Iterable[BenchmarkResult]) -> str:
    """What a chart's whiskers show, for its caption."""
    has_interval = any(
        isinstance(b.extra_info.get("time"), dict) and b.extra_info["time"].get("ci95")
        for b in benches
    )
    return "95% interval over processes" if has_interval else "interquartile range"


def order(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    rank: dict[str, int] = {}
    for i, v in enumerate(preferred):
        rank.setdefault(v, i)
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), seen.index(v)))


def backend_label(result: ResultFile, name: str, sep: str = "\n") -> str:
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
    pyplot().close(fig)
    return written


def save_figure(fig: Figure, result: ResultFile | None, out: Path, stem: str) -> list[Path]:
    """Write a figure as PNG and SVG (replacing charts of that name), with the run's footnote."""
    return _save(fig, result, out, stem)


def layout(
    fig: Figure, top_inches: float = 0.85, bottom_inches: float = 0.45, right: float = 1.0
) -> None:
    """Room, in inches, for the two-line title above and the footnote below the panels."""
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, bottom_inches / height, right, 1))
    # tight_layout leaves a suptitle's room to chance; panel titles must start below it
    top = fig.subplotpars.top
    fig.subplots_adjust(top=min(top, 1 - (top_inches + 0.25) / height))


def plain_log_ticks(axis: Any) -> None:
    """Log axes labelled 2, 5, 10, 200 rather than 2×10^0: readers compare numbers, not powers."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))


def benches_of(result: ResultFile, question: str) -> list[BenchmarkResult]:
    return [b for b in result.benchmarks if b.question == question]


def legend(fig: Figure, axes: Any, used: int, title: str, ncols: int = 1) -> None:
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


# --- loading ----------------------------------------------------------------------------------


# --- pools ------------------------------------------------------------------------------------


# --- bulk_insert ------------------------------------------------------------------------------


def si(value: float) -> str:
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
    plt = pyplot()
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
    plain_log_ticks(ax.xaxis)
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
    layout(fig, top_inches=1.05)
    return cast("Figure", fig)


def history_figure(history: History) -> Figure | None:
    """Each benchmark's median over the runs, as a ratio to its first run, a panel per question."""
    if len(history.runs) < 2:
        return None
    by_question: dict[str, list[tuple[str, list[float | None]]]] = defaultdict(list)
    for name, medians in history.series.items():
        question = name.removeprefix("test_").split("[")[0]
        by_question[question].append((name, medians))
    plt = pyplot()
    from sqlabench.questions import discover

    questions = order(by_question, list(discover()))
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
        plain_log_ticks(ax.yaxis)
        ax.set_ylabel("× first run (log)")
        ax.set_title(f"{question}: {len(by_question[question])} benchmarks", loc="left")
    axes[-1, 0].set_xticks(xs, history.runs, rotation=30, ha="right", fontsize=7)
    axes[0, 0].legend(loc="upper left", frameon=False, fontsize=8)
    fig.suptitle(
        "history: each benchmark's median per run, relative to its first run (lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    layout(fig)
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


def plot_results(results: Sequence[ResultFile], directory: str | os.PathLike[str]) -> Charts:
    """The question charts (each from the newest run that has it), then compare and history."""
    if not results:
        raise SqlabenchError("no result files given")
    out = _prepare_out(directory)
    charts = Charts()
    from sqlabench import questions

    drawn: dict[str, str] = {}
    for question, source, shown in questions.in_results(results):
        if source is None:
            charts.notes.append(f"{question}: no data in the given results, no chart")
            continue
        if shown is None:
            charts.notes.append(
                f"{question}: no chart (its module is not to be found here, or draws none)"
            )
            continue
        for stem, fig in shown.figures(source):
            if fig is None:
                charts.notes.append(f"{question}: nothing to draw")
                continue
            if stem in drawn:  # a user's question may name a chart as another one does
                charts.notes.append(
                    f"{question}: its chart {stem!r} has the name of {drawn[stem]}'s, not drawn"
                )
                pyplot().close(fig)
                continue
            drawn[stem] = question
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
