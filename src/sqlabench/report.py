"""The report: per question, the answer in one sentence computed from the data, the table
behind it and its chart; then the environment. Markdown, and HTML with the charts inside.

Like the charts it reads result files only.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlabench import files, plot, summary
from sqlabench.results import BenchmarkResult, ResultFile

QUESTION_TITLES = {
    "engines": "Sync or async engine, ORM, Core or the raw driver?",
    "loading": "Lazy, selectinload or joinedload?",
    "bulk_insert": "Which bulk-insert strategy?",
    "pools": "What pool size for how many concurrent clients?",
}


@dataclass(frozen=True)
class Section:
    question: str
    title: str
    answer: str
    tables: list[summary.Table]
    charts: list[Path]
    source: ResultFile


@dataclass
class Report:
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environment: list[ResultFile] = field(default_factory=list)
    extra_charts: list[Path] = field(default_factory=list)


def _verified(benches: Sequence[BenchmarkResult]) -> list[BenchmarkResult]:
    return [b for b in benches if b.extra_info.get("verified")]


def _where(result: ResultFile) -> str:
    rtt = result.info.rtt_ms
    return f"at {rtt:g} ms RTT" if rtt else "over a local connection"


def _times(value: float) -> str:
    return f"{value:.1f}×" if value < 10 else f"{value:.0f}×"


def _statements(count: object) -> str:
    return f"{count:,} statement{'' if count == 1 else 's'}" if isinstance(count, int) else "?"


def _span(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return _times(low) if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {_times(high)}"


# --- one sentence per question ----------------------------------------------------------------


def engines_answer(result: ResultFile) -> str:
    benches = _verified([b for b in result.benchmarks if b.question == "engines"])
    lookups = {
        (b.backend, str(b.extra_info.get("layer"))): b
        for b in benches
        if b.extra_info.get("workload") == "pk_lookup"
    }
    backends = plot.order({backend for backend, _ in lookups}, plot.BACKEND_ORDER)
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
    fastest = min(
        (b for b in backends if (b, "orm") in lookups), key=lambda b: lookups[(b, "orm")].median
    )
    sentence = (
        f"A primary-key lookup through the ORM took {_span(orm)} the raw driver's time "
        f"(Core {_span(core) if core else 'not measured'}) on {len(orm)} backend(s) "
        f"{_where(result)}; the fastest ORM lookup was on {fastest} "
        f"({summary.format_time(lookups[(fastest, 'orm')].median)})"
    )
    if ("psycopg", "orm") in lookups and ("psycopg_async", "orm") in lookups:
        ratio = lookups[("psycopg_async", "orm")].median / lookups[("psycopg", "orm")].median
        sentence += f", and the async psycopg engine took {ratio:.2f}× the sync one's time"
    return sentence + "."


def loading_answer(result: ResultFile) -> str:
    backend = plot.loading_backend(result)
    benches = _verified(
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
    fastest = min(at, key=lambda b: b.median)
    lazy = next((b for b in at if b.extra_info.get("strategy") == "lazy"), None)
    children = "child" if fanout == 1 else "children"
    what = (
        f"loading {parents:,} parents with {fanout:,} {children} each "
        f"({str(fastest.extra_info['shape']).replace('_', '-')}) on {backend} {_where(result)}"
    )
    name = fastest.extra_info["strategy"]
    if lazy is None or lazy is fastest:
        return (
            f"For {what}, {name} was the fastest strategy ({summary.format_time(fastest.median)})."
        )
    return (
        f"For {what}, {name} was {_times(lazy.median / fastest.median)} faster than lazy "
        f"({summary.format_time(fastest.median)} against {summary.format_time(lazy.median)}; "
        f"{_statements(fastest.extra_info.get('statements'))} against "
        f"{lazy.extra_info.get('statements'):,}), and the fastest strategy measured."
    )


def bulk_insert_answer(result: ResultFile) -> str:
    benches = _verified([b for b in result.benchmarks if b.question == "bulk_insert"])
    if not benches:
        return "No verified bulk_insert result in this run."
    rows = max(int(b.extra_info["rows"]) for b in benches)
    benches = [b for b in benches if int(b.extra_info["rows"]) == rows]
    backends = plot.order({b.backend for b in benches}, ("psycopg", "asyncpg", *plot.BACKEND_ORDER))
    sentences = []
    for backend in backends[:2]:
        mine = [b for b in benches if b.backend == backend]
        ceiling = next((b for b in mine if b.extra_info.get("ceiling")), None)
        sqlalchemy_ways = [
            b for b in mine if not str(b.extra_info.get("strategy")).startswith(("raw", "copy"))
        ]
        if ceiling is None or not sqlalchemy_ways:
            continue
        best = min(sqlalchemy_ways, key=lambda b: b.median)
        unit_of_work = next(
            (b for b in mine if b.extra_info.get("strategy") == "orm_add_all_flush"), None
        )
        rate = float(ceiling.extra_info["rows_per_s"])
        share = float(best.extra_info["ratio_to_ceiling"])
        sentence = (
            f"at {rows:,} rows on {backend}, {ceiling.extra_info['strategy']} (the ceiling) "
            f"inserted {rate:,.0f} rows/s; the fastest SQLAlchemy strategy, "
            f"{summary.bulk_label(best.extra_info)}, reached {share:.2f} of it"
        )
        if unit_of_work is not None:
            sentence += (
                f" and the ORM unit of work (add_all + flush) "
                f"{unit_of_work.extra_info['ratio_to_ceiling']:.2f}"
            )
        sentences.append(sentence)
    if not sentences:
        return "No backend in this run has both its ceiling and a SQLAlchemy strategy verified."
    text = "; ".join(sentences)
    return text[0].upper() + text[1:] + f" ({_where(result)})."


def _latency(result: ResultFile) -> str:
    if result.info.rtt_ms:
        return f"injected RTT {result.info.rtt_ms:g} ms"
    own = sorted({float(b.extra_info["rtt_ms"]) for b in result.benchmarks
                  if b.extra_info.get("rtt_ms")})  # fmt: skip
    if own:
        return "no latency injected run-wide; benchmarks named …-rtt<X>ms ran at " + ", ".join(
            f"{rtt:g} ms" for rtt in own
        )
    return "no injected latency"


def pools_answer(result: ResultFile) -> str:
    """The pool size to pick, named only where the rounds separate it from smaller pools."""
    every = summary.pool_curves(result)
    if not every:
        return "No verified pools result in this run (no pool served every request in time)."
    # the injected round trip first: that is where the pool, not the cores, is the limit
    return " ".join(
        _pools_sentence([c for c in every if c.rtt_ms == rtt], rtt)
        for rtt in sorted({c.rtt_ms for c in every}, reverse=True)
    )


def _pools_sentence(curves: list[summary.PoolCurve], rtt: float) -> str:
    concurrency = max(c.concurrency for c in curves)
    parts = []
    for backend in plot.order({c.backend for c in curves}, plot.BACKEND_ORDER):
        curve = next(
            (c for c in curves if c.backend == backend and c.concurrency == concurrency), None
        )
        if curve is None:
            continue
        at = curve.sizes.index(curve.knee)
        rps = curve.throughput[at]
        if len(curve.sizes) == 1:
            part = f"on {backend} only pool {curve.knee} was measured ({rps:,.0f} requests/s)"
        elif not curve.served_above:
            # a larger pool served less (a dip, or a decline past the best): no "or more"
            worst = min(range(at, len(curve.sizes)), key=curve.throughput.__getitem__)
            part = (
                f"on {backend} pool {curve.knee} served within {curve.tolerance:.0%} of the "
                f"best ({curve.best:,.0f} requests/s), but not every larger one did (pool "
                f"{curve.sizes[worst]}: {curve.throughput[worst]:,.0f})"
            )
            if at > 0:
                part += _smaller(curve, at)
        elif not curve.still_rising:
            part = (
                f"on {backend} any pool of {curve.knee} or more serves within "
                f"{curve.tolerance:.0%} of the best ({curve.best:,.0f} requests/s)"
            )
            if at > 0:
                part += _smaller(curve, at)
        elif curve.knee >= concurrency:
            part = (
                f"on {backend} only a connection per client (pool {curve.knee}) served within "
                f"{curve.tolerance:.0%} of the best, {rps:,.0f} requests/s" + _smaller(curve, at)
            )
        elif curve.client_bound[at]:
            part = (
                f"on {backend} throughput still rose at the largest pool measured "
                f"({curve.knee}: {rps:,.0f} requests/s" + _smaller(curve, at) + "), where "
                "the client process used a whole core: the client, not the pool, is the limit"
            )
        else:
            part = (
                f"on {backend} throughput still rose at the largest pool measured "
                f"({curve.knee}: {rps:,.0f} requests/s" + _smaller(curve, at) + "): a larger "
                "pool may serve more"
            )
        if curve.client_bound[at] and not (curve.still_rising and curve.knee < concurrency):
            part += " (client-bound: the client process used a whole core)"
        if curve.null_rps is not None:
            part += f"; NullPool {curve.null_rps:,.0f}"
        parts.append(part)
    where = f"at {rtt:g} ms RTT" if rtt else "over a local connection"
    return f"With {concurrency} concurrent clients {where}, " + "; ".join(parts) + "."


def _smaller(curve: summary.PoolCurve, at: int) -> str:
    size, rps = curve.sizes[at - 1], curve.throughput[at - 1]
    return f"; pool {size}: {rps:,.0f}, {1 - rps / curve.throughput[at]:.0%} less"


ANSWERS: dict[str, Callable[[ResultFile], str]] = {
    "engines": engines_answer,
    "loading": loading_answer,
    "bulk_insert": bulk_insert_answer,
    "pools": pools_answer,
}


# --- building and writing ---------------------------------------------------------------------


def build(results: Sequence[ResultFile], out: str | os.PathLike[str]) -> Report:
    """Draw the charts into `out` and gather, per question, its answer, tables and charts."""
    charts = plot.plot_results(results, out)
    report = Report(notes=list(charts.notes))
    for question in plot.QUESTIONS:
        source = plot.newest_with(results, question)
        if source is None:
            continue
        if source not in report.environment:
            report.environment.append(source)
        tables = summary.SUMMARIES[question](source)
        report.sections.append(
            Section(
                question=question,
                title=QUESTION_TITLES[question],
                answer=ANSWERS[question](source),
                tables=tables,
                charts=[p for p in charts.by_question.get(question, []) if p.suffix == ".png"],
                source=source,
            )
        )
    for name in ("compare", "history"):
        report.extra_charts += [p for p in charts.by_question.get(name, []) if p.suffix == ".png"]
    return report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " · ")


def markdown_table(table: summary.Table) -> list[str]:
    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append(
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(table.columns))) + "|"
    )
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    lines += [""] + [f"_{note}_" for note in table.notes]
    return [*lines, ""]


def environment_lines(result: ResultFile) -> list[str]:
    info = result.info
    name = result.path.name if result.path else "(result)"
    lines = [
        f"**{name}**: {info.profile} profile, started {info.started}, finished {info.finished}"
        f"{'' if info.complete else ' (INCOMPLETE)'}; {len(result.benchmarks)} benchmarks, "
        f"{len(info.failures)} failed, {len(info.skipped)} left out on purpose.",
        "",
        f"Machine `{info.machine}`; Python {info.python}; SQLAlchemy {info.sqlalchemy}; "
        f"sqlabench {info.suite_version} at commit `{info.suite_commit}`; "
        + _latency(result)
        + (f"; {info.repeat} passes" if info.repeat > 1 else "")
        + ".",
        "",
        "| backend | mode | driver | server |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b.name} | {b.mode} | {b.driver} {b.driver_version} | {b.server} {b.server_version} |"
        for b in info.backends
    ]
    return [*lines, ""]


def markdown(report: Report, out: Path) -> str:
    lines = ["# sqlabench report", ""]
    if report.environment:
        newest = max(report.environment, key=lambda r: r.info.started)
        lines += [
            f"Measured {newest.info.started[:10]} on `{newest.info.machine}`. Every number is a "
            "median of repeated rounds on real databases; ratios compare medians from the same "
            "run. Reproduce with `sqlabench run all --profile "
            f"{newest.info.profile}` and `sqlabench report`.",
            "",
        ]
    for section in report.sections:
        lines += [
            f"## {section.question}: {section.title}",
            "",
            f"**Answer.** {section.answer}",
            "",
        ]
        lines += [f"![{section.question}]({os.path.relpath(p, out)})" for p in section.charts]
        lines.append("")
        for table in section.tables:
            lines += markdown_table(table)
    if report.extra_charts:
        lines += ["## Across runs", ""]
        lines += [f"![{p.stem}]({os.path.relpath(p, out)})" for p in report.extra_charts]
        lines.append("")
    if report.notes:
        lines += ["## Not shown", ""] + [f"- {n}" for n in report.notes] + [""]
    lines += ["## Environment", ""]
    for result in report.environment:
        lines += environment_lines(result)
    return "\n".join(lines).rstrip() + "\n"


def _inline(text: str) -> str:
    """The few Markdown marks the report uses, as HTML, on already escaped text."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"(?<![\w])_(.+?)_(?![\w])", r"<em>\1</em>", text)


def to_html(markdown_text: str, out: Path) -> str:
    """The Markdown report as one self-contained HTML page, its charts embedded as data URIs."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if not table:
            return
        head, *rows = [r for r in table if not re.fullmatch(r"[-:|]+", "|".join(r))]
        body.append(
            "<table><thead><tr>"
            + "".join(f"<th>{_inline(c)}</th>" for c in head)
            + "</tr></thead><tbody>"
        )
        body.extend("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
        body.append("</tbody></table>")
        table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [
                html.escape(c.strip().replace("\\|", "|"))
                for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]
            ]
            table.append(cells)
            continue
        flush_table()
        image = re.fullmatch(r"!\[(.*?)\]\((.+?)\)", line)
        if image:
            data = base64.b64encode((out / image.group(2)).read_bytes()).decode("ascii")
            alt = html.escape(image.group(1))
            body.append(f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(html.escape(line[level:].strip()))}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<ul><li>{_inline(html.escape(line[2:]))}</li></ul>")
        elif line.strip():
            body.append(f"<p>{_inline(html.escape(line))}</p>")
    flush_table()
    style = (
        "body{font-family:system-ui,sans-serif;max-width:75rem;margin:2rem auto;padding:0 1rem;"
        "color:#222}table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}"
        "td,th{border:1px solid #ccc;padding:.2rem .4rem;text-align:right;white-space:nowrap}"
        "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}img{max-width:100%}"
        "code{background:#f4f4f4;padding:0 .2rem}"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>sqlabench report</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _write(path: Path, text: str) -> None:
    files.write_atomic(path, text, overwrite=True)


def write(
    results: Sequence[ResultFile], directory: str | os.PathLike[str]
) -> tuple[Path, Path, Report]:
    """Charts, report.md and report.html in `directory`; returns the two report paths."""
    out = Path(directory)
    report = build(results, out)
    text = markdown(report, out)
    md_path, html_path = out / "report.md", out / "report.html"
    _write(md_path, text)
    _write(html_path, to_html(text, out))
    return md_path, html_path, report
