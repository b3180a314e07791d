"""Summary tables computed from a result file alone (the CLI prints them after a run)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

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
