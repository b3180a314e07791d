"""Summary tables computed from a result file alone (the CLI prints them after a run)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlabench.results import BenchmarkResult, Ratio, ResultFile


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


def tables(result: ResultFile) -> list[Table]:
    """Every question's tables, as its module draws them (a generic table where the module is
    not to be found here), in the order the run ran them."""
    from sqlabench import questions

    found = {b.question for b in result.benchmarks}
    known = {q.name: q for q in questions.recorded(sorted(found), result.info.question_sources)}
    out: list[Table] = []
    for question in [*result.info.questions, *sorted(found - set(result.info.questions))]:
        if question not in found:
            continue
        shown = questions.presentation(known[question]) if question in known else None
        out.extend(shown.tables(result) if shown else [generic_table(result, question)])
    return out


# --- phrases the answers share ------------------------------------------------------------------


def verified(benches: Sequence[BenchmarkResult]) -> list[BenchmarkResult]:
    return [b for b in benches if b.extra_info.get("verified")]


def where(result: ResultFile) -> str:
    rtt = result.info.rtt_ms
    return f"at {rtt:g} ms RTT" if rtt else "over a local connection"


def times(value: float) -> str:
    return f"{value:.1f}×" if value < 10 else f"{value:.0f}×"


def statement_count(count: object) -> str:
    return f"{count:,} statement{'' if count == 1 else 's'}" if isinstance(count, int) else "?"


def span(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return times(low) if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {times(high)}"


# --- ratios with their intervals, and ties ------------------------------------------------------

TIE_BAND = 0.03
"""Two options tie unless the 95% interval of their ratio lies wholly outside ±3%: a smaller
difference is below what a user could notice, and a wider interval is the machine's noise."""


def format_ratio_interval(value: Ratio | None) -> str:
    """`1.23× (1.18-1.30)`: the ratio and its 95% interval over processes, when known."""
    if value is None:
        return "-"
    if value.low is None or value.high is None:
        return format_ratio(value.value)
    return f"{value.value:.2f}× ({value.low:.2f}-{value.high:.2f})"


def clear(value: Ratio, band: float = TIE_BAND, noise: float = 0.0) -> bool:
    """Whether `value` names a difference: its interval (or, with no interval, the ratio
    with `noise` either side) lies wholly outside the tie band around 1."""
    low, high = (value.low, value.high) if value.known else (None, None)
    if low is None or high is None:
        low, high = value.value / (1 + noise), value.value * (1 + noise)
    return high < 1 / (1 + band) or low > 1 + band


def tie_within(value: Ratio, band: float = TIE_BAND, noise: float = 0.0) -> int:
    """How far apart two tied options may be: the farther end of the ratio's interval from
    1 (at least the tie band), in whole percent, rounded up."""
    low, high = (value.low, value.high) if value.known else (None, None)
    if low is None or high is None:
        low, high = value.value / (1 + noise), value.value * (1 + noise)
    far = max(high - 1, 1 / low - 1 if low > 0 else 0.0, band)
    return math.ceil(round(far * 100, 6))


NOISE_FLOOR = 0.05
"""With one process per benchmark (no interval), the least noise allowed between two."""


def rounds_noise(a: BenchmarkResult, b: BenchmarkResult) -> float:
    """With no interval over processes: the relative difference two benchmarks' own rounds
    allow, the larger interquartile range over its median, at least NOISE_FLOOR."""
    spreads = [NOISE_FLOOR]
    for bench in (a, b):
        q1, q3 = bench.stats.get("q1"), bench.stats.get("q3")
        if isinstance(q1, int | float) and isinstance(q3, int | float) and bench.median > 0:
            spreads.append((float(q3) - float(q1)) / bench.median)
    return max(spreads)


def ratio_of(a: BenchmarkResult | None, b: BenchmarkResult | None) -> Ratio | None:
    """a's headline time over b's, with its interval where the result has one."""
    from sqlabench import results

    return results.ratio(a, b) if a is not None and b is not None else None


def differs(a: BenchmarkResult, b: BenchmarkResult) -> bool:
    """Whether a and b are apart by more than a tie: their ratio's interval clears the tie
    band (with one process, the rounds' noise stands in for the interval)."""
    value = ratio_of(a, b)
    assert value is not None
    return clear(value, noise=0.0 if value.known else rounds_noise(a, b))


def tie_phrase(a: BenchmarkResult, b: BenchmarkResult) -> str:
    """`tie within 4%`: how far apart a and b may be, for a tie."""
    value = ratio_of(a, b)
    assert value is not None
    return f"tie within {tie_within(value, noise=0.0 if value.known else rounds_noise(a, b))}%"


def took(a: BenchmarkResult, b: BenchmarkResult, a_label: str, b_label: str) -> str:
    """`A took 1.12× (1.08-1.15) B's time`, or `A and B tie within 4%` inside the noise."""
    if not differs(a, b):
        return f"{a_label} and {b_label} {tie_phrase(a, b)}"
    return f"{a_label} took {format_ratio_interval(ratio_of(a, b))} {b_label}'s time"


def interval_note(benches: Sequence[BenchmarkResult]) -> list[str]:
    """The note under a table whose ratios carry intervals (none when no benchmark has one)."""
    counts = sorted(
        {int(b.extra_info["time"]["processes"]) for b in benches if "time" in b.extra_info}
    )
    if not counts or counts[-1] < 2:
        return []
    processes = "/".join(map(str, counts))
    few = (
        " (with fewer than 5 processes it is simply their range, and holds the truth less "
        "often than 95%)"
        if counts[0] < 5
        else ""
    )
    return [
        f"In brackets: the ratio's interval over {processes} worker processes (95% bootstrap, "
        f"processes paired){few}; ratios whose interval stays within ±{TIE_BAND:.0%} are ties."
    ]
