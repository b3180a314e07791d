"""The report: per question, the answer in one sentence computed from the data, the table
behind it and its chart; then the environment. Markdown, and HTML with the charts inside.

Like the charts it reads result files only.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlabench import files, plot, questions, summary
from sqlabench.results import ResultFile


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


def latency(result: ResultFile) -> str:
    """How the run reached its servers: the injected RTT, the benchmarks that ran at their own."""
    if result.info.rtt_ms:
        return f"injected RTT {result.info.rtt_ms:g} ms"
    own = sorted({float(b.extra_info["rtt_ms"]) for b in result.benchmarks
                  if b.extra_info.get("rtt_ms")})  # fmt: skip
    if own:
        return "no latency injected run-wide; benchmarks named …-rtt<X>ms ran at " + ", ".join(
            f"{rtt:g} ms" for rtt in own
        )
    return "no injected latency"


# --- building and writing ---------------------------------------------------------------------


def build(results: Sequence[ResultFile], out: str | os.PathLike[str]) -> Report:
    """Draw the charts into `out` and gather, per question, its answer, tables and charts."""
    charts = plot.plot_results(results, out)
    report = Report(notes=list(charts.notes))
    for question, source, shown in questions.in_results(results):
        if source is None:
            continue
        if source not in report.environment:
            report.environment.append(source)
        report.sections.append(
            Section(
                question=question,
                title=shown.title if shown else question,
                answer=shown.answer(source)
                if shown
                else ("(no answer: its module is not to be found here, or gives none)"),
                tables=shown.tables(source) if shown else [summary.generic_table(source, question)],
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
        + latency(result)
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


def _questions_run(report: Report) -> str:
    """`all`, and the files of users' own questions as their runs named them (relative to the
    directory a run ran in; an absolute path by its file name alone)."""
    own = {
        name: Path(source)
        for result in report.environment
        for name, source in result.info.question_sources.items()
        if questions.looks_like_path(source)
    }
    shown = sorted(
        path.name if path.is_absolute() else str(path)
        for name, path in own.items()
        if any(s.question == name for s in report.sections)
    )
    built_in = any(s.question not in own for s in report.sections)
    return " ".join((["all"] if built_in or not shown else []) + shown)


def markdown(report: Report, out: Path) -> str:
    lines = ["# sqlabench report", ""]
    if report.environment:
        newest = max(report.environment, key=lambda r: r.info.started)
        lines += [
            f"Measured {newest.info.started[:10]} on `{newest.info.machine}`. Every number is a "
            "median of repeated rounds on real databases; ratios compare medians from the same "
            f"run. Reproduce with `sqlabench run {_questions_run(report)} --profile "
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
