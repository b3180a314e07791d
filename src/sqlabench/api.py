"""The public API for writing a question of your own (`sqlabench run my_question.py`).

A question module is a pytest module. It declares:

```python
QUESTION = "pagination"            # its name; every benchmark records it in extra_info
PROFILES = {"smoke": ..., "quick": ..., "full": ...}   # its sizes per profile

class PaginationInfo(BenchmarkInfo, total=False):       # its typed extra_info record
    strategy: str
    page: int
    statements: float
INFO = PaginationInfo

def cases(backends: list[Backend], profile: str) -> list[MyCase]: ...   # each with an `id`
pytest_generate_tests, case = case_parameters(cases)

def test_pagination(benchmark, sqlabench_run: RunContext, case: MyCase) -> None:
    target = sqlabench_run.seeded(case.backend, "shared:1000x10", lambda t: seed(t, size))
    benchmark.extra_info.update(PaginationInfo(question=QUESTION, backend=case.backend.name,
                                               mode=case.backend.mode, verified=False))
    counter = StatementCounter(count_rows=True)
    with contextlib.ExitStack() as stack:
        conn = held_connection(sync_engine(case.backend, target, counter, stack), stack)
        outcome = measure(benchmark, lambda: read_page(conn), counter)
    check(outcome.results[-1] == expected, "the page read is not the expected one")
    benchmark.extra_info.update(PaginationInfo(statements=outcome.statements_per_call,
                                               verified=True))

TITLE = "Offset or keyset pagination?"           # the heading in the report
def tables(result: ResultFile) -> list[Table]: ...  # read from a result file only
def figures(result: ResultFile) -> list[tuple[str, Figure | None]]: ...
def answer(result: ResultFile) -> str: ...       # one sentence
```

`variants_table`, `variants_figure` and `variants_answer` below draw the usual comparison
(variants of an operation, grouped by what else varies) for any question, so a module can
declare `tables`, `figures` and `answer` in three lines. The answer names a winner only where
the difference is larger than the noise of the two benchmarks; otherwise it says "tie within x%".
examples/pagination.py is a complete question written against this API.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from sqlabench import summary
from sqlabench.backends import Backend, Target
from sqlabench.database import seed
from sqlabench.measure import (
    Outcome,
    Rounds,
    StatementCounter,
    VerificationError,
    check,
    measure,
    measure_async,
)
from sqlabench.models import Address, Base, Comment, DataSize, Post, User
from sqlabench.plugin import RunContext
from sqlabench.results import BenchmarkInfo, BenchmarkResult, ResultFile
from sqlabench.scenario import (
    async_engine,
    async_held_connection,
    case_parameters,
    held_connection,
    sync_engine,
)
from sqlabench.summary import Table, format_time

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Address", "Backend", "Base", "BenchmarkInfo", "BenchmarkResult", "Comment", "DataSize",
    "Outcome", "Post", "ResultFile", "Rounds", "RunContext", "StatementCounter", "Table",
    "Target", "User",
    "VerificationError", "async_engine", "async_held_connection", "case_parameters", "check",
    "held_connection", "measure", "measure_async", "noise", "seed", "sync_engine",
    "variants_answer", "variants_figure", "variants_table",
]  # fmt: skip

NOISE_FLOOR = summary.NOISE_FLOOR


def noise(a: BenchmarkResult, b: BenchmarkResult) -> float:
    """The relative difference two benchmarks' own rounds allow, where no interval over
    processes is known: the larger interquartile range over its median, at least
    NOISE_FLOOR."""
    return summary.rounds_noise(a, b)


def _groups(
    result: ResultFile,
    question: str,
    group_by: Sequence[str],
    variant: str,
    backend: str | None = None,
) -> dict[tuple[str, ...], dict[str, BenchmarkResult]]:
    groups: dict[tuple[str, ...], dict[str, BenchmarkResult]] = defaultdict(dict)
    for bench in result.benchmarks:
        if bench.question == question and backend in (None, bench.backend):
            key = tuple(str(bench.extra_info.get(k, "")) for k in group_by)
            groups[key][str(bench.extra_info.get(variant, bench.name))] = bench
    return groups


def _variants(groups: dict[tuple[str, ...], dict[str, BenchmarkResult]]) -> list[str]:
    return list(dict.fromkeys(v for by_variant in groups.values() for v in by_variant))


def variants_table(
    result: ResultFile, question: str, group_by: Sequence[str], variant: str
) -> list[Table]:
    """A row per group: each variant's median, its ratio to the group's fastest verified
    variant, its statements and rows per operation."""
    groups = _groups(result, question, group_by, variant)
    if not groups:
        return []
    variants = _variants(groups)
    rows: list[tuple[str, ...]] = []
    for key, by_variant in groups.items():
        checked = [b.median for b in by_variant.values() if b.extra_info.get("verified")]
        fastest = min(checked) if checked else None
        cells = []
        for name in variants:
            bench = by_variant.get(name)
            if bench is None:
                cells.append("-")
                continue
            info = bench.extra_info
            times = f"{bench.median / fastest:.2f}×" if fastest else "-"
            cells.append(
                f"{format_time(bench.median)}{'' if info.get('verified') else ' UNVERIFIED'}\n"
                f"{times}\n{info.get('statements', '?')} st, {info.get('rows_fetched', '?')} r"
            )
        rows.append((*key, *cells))
    return [
        Table(
            f"{question}: median per operation / × the fastest / statements (st), rows (r)",
            (*group_by, *variants),
            rows,
            ["Ratios compare medians measured in this run on this machine; 1.00× is fastest."],
        )
    ]


def variants_answer(
    result: ResultFile, question: str, group_by: Sequence[str], variant: str
) -> str:
    """Per group, the fastest verified variant against the next, or a tie within the noise."""
    parts = []
    for key, by_variant in _groups(result, question, group_by, variant).items():
        ranked = sorted(
            (b for b in by_variant.values() if b.extra_info.get("verified")),
            key=lambda b: b.median,
        )
        label = ", ".join(f"{k} {v}" for k, v in zip(group_by, key, strict=True))
        if len(ranked) < 2:
            parts.append(f"{label}: fewer than two verified {variant}s")
            continue
        best, next_best = ranked[0], ranked[1]
        name, other = (str(b.extra_info.get(variant, b.name)) for b in (best, next_best))
        if not summary.differs(next_best, best):
            parts.append(f"{label}: {name} and {other} {summary.tie_phrase(next_best, best)}")
        else:
            faster = summary.format_ratio_interval(summary.ratio_of(next_best, best))
            parts.append(
                f"{label}: {other} took {faster} {name}'s time "
                f"({format_time(next_best.median)} against {format_time(best.median)})"
            )
    if not parts:
        return f"No {question} result in this run."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def variants_figure(
    result: ResultFile, question: str, x: str, variant: str, title: str, backend: str
) -> Figure | None:
    """Grouped bars on one backend: a group per value of `x`, a bar per variant (median,
    whiskers: the 95% interval over processes, or the rounds' interquartile range); lower
    is faster. Drawn only when a chart is asked for."""
    from sqlabench import plot

    groups = _groups(result, question, (x,), variant, backend)
    if not groups:
        return None
    plt = plot.pyplot()
    variants = _variants(groups)
    xs = list(groups)
    scale, unit = plot.scale_and_unit(b.median for g in groups.values() for b in g.values())
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    width = 0.8 / len(variants)
    for index, name in enumerate(variants):
        points: list[tuple[float, float, float, float]] = []
        for slot, key in enumerate(xs):
            bench = groups[key].get(name)
            if bench is not None:
                q1, q3 = plot.interval(bench)
                points.append(
                    (slot - 0.4 + width * (index + 0.5), bench.median * scale,
                     max(0.0, bench.median - q1) * scale, max(0.0, q3 - bench.median) * scale)
                )  # fmt: skip
        if points:
            at, heights, low, high = zip(*points, strict=True)
            ax.bar(
                at, heights, width * 0.95, yerr=[low, high], capsize=2, label=name,
                color=plot.OKABE_ITO[index % len(plot.OKABE_ITO)],
                hatch=("", "//", "..", "xx")[index % 4],
                error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
            )  # fmt: skip
    ax.set_xticks(range(len(xs)), [key[0] for key in xs])
    ax.set_xlabel(x)
    ax.set_ylabel(f"median per operation ({unit})")
    ax.legend(title=variant, frameon=False, fontsize=8)
    fig.suptitle(
        f"{title}\n(bars: median, whiskers: "
        f"{plot.whiskers(b for g in groups.values() for b in g.values())}; lower is faster)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    plot.layout(fig)
    return cast("Figure", fig)
