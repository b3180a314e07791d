"""Running questions: check the input, prepare the databases, run pytest-benchmark, store.

Everything a user can get wrong is checked before the first benchmark starts, so a bad option
costs a second, not a run.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sqlabench import counting, results, selection, stopping, worker
from sqlabench import questions as question_registry
from sqlabench.backends import Backend, Target, resolve_backends
from sqlabench.database import exclusive_use, prepare
from sqlabench.errors import SqlabenchError
from sqlabench.families import server_urls
from sqlabench.latency import check_rtt, injected_latency
from sqlabench.plugin import RUN_DIR_ENV, RunContext
from sqlabench.stopping import stop_handlers, stop_signal_name, stops_held

DEFAULT_OUT = Path("results/runs")

# pytest-benchmark's calibration per profile, for each worker process. Operations of 20 µs or
# more are timed one per round; warm-up runs first so prepared statements (psycopg prepares on
# the 5th execution) and SQLAlchemy's compiled cache are in their steady state. Warm-up rounds
# cost as much as measured ones, so slow operations (lazy loading hundreds of rows) keep them
# few. A process gets a short share: its median is one sample of what moves between processes,
# and PROCESSES of them make the headline.
TIMING: dict[str, list[str]] = {
    "smoke": [
        "--benchmark-min-rounds=3", "--benchmark-max-time=0.005", "--benchmark-warmup=off",
    ],
    "quick": [
        "--benchmark-min-rounds=2", "--benchmark-max-time=0.03", "--benchmark-min-time=0.00002",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=2",
    ],
    "full": [
        "--benchmark-min-rounds=3", "--benchmark-max-time=0.2", "--benchmark-min-time=0.00002",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=10",
    ],
}  # fmt: skip

PROCESSES = {"smoke": 1, "quick": 3, "full": 5}
"""Worker processes (passes) per run when --repeat does not say: the unit of sampling."""


class RunInterrupted(KeyboardInterrupt):
    """A stop signal during the run: what was measured is saved, marked incomplete.

    `path` is None when no benchmark had ended yet (nothing to save); `complete` is True when
    the signal came after the last benchmark, while the result was saved or servers stopped.
    """

    def __init__(self, path: Path | None, complete: bool = False) -> None:
        super().__init__(str(path))
        self.path = path
        self.complete = complete


class ResultRescued(SqlabenchError):
    """The result could not be written where asked and was saved to a fallback instead."""


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    result: results.ResultFile
    failed: int
    """How many benchmarks failed (errors or failed verification)."""


def check_selection(select: str | None) -> None:
    """A bad -k expression is bad input, said in one line before anything starts."""
    if not select:
        return
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pragma: no cover - pytest moved it; pytest will say so itself
        return
    try:
        Expression.compile(select)
    except SyntaxError as exc:
        raise SqlabenchError(
            f"invalid -k expression {select!r}: at column {exc.offset}: {exc.msg}"
        ) from None


def run(
    question_names: list[str] | tuple[str, ...],
    profile: str = "quick",
    backend_names: list[str] | tuple[str, ...] = (),
    postgres_url: str | None = None,
    out_dir: str | Path = DEFAULT_OUT,
    select: str | None = None,
    rtt_ms: float = 0.0,
    repeat: int | None = None,
    instructions: bool = False,
    urls: Mapping[str, str | None] | None = None,
    only: Sequence[str] = (),
) -> RunOutcome:
    """Run the questions' benchmarks and write one new result file into `out_dir`.

    With `rtt_ms`, every PostgreSQL backend reaches its server through a proxy adding that
    round-trip latency, measured before any benchmark runs. Each of the `repeat` passes (by
    default the profile's PROCESSES) runs in a fresh worker process. With `instructions`, a counting
    pass follows the timed passes (see `sqlabench.counting`) and each benchmark's counts per
    operation join its `extra_info`. `urls` names the servers of other families by family
    name (each else from its environment variable, as `postgres_url` is by the CLI). With
    `only`, just the benchmarks those ids (or -k expressions over ids) select; one that
    selects none is bad input (see sqlabench.selection).
    """
    stopping.reset()
    chosen = question_registry.resolve(list(question_names))
    question_registry.check_profile(profile)
    check_rtt(rtt_ms)
    if repeat is None:
        repeat = PROCESSES[profile]
    if not 1 <= repeat <= 100:
        raise SqlabenchError(f"--repeat must be from 1 to 100, not {repeat}")
    backends = resolve_backends(list(backend_names))
    check_selection(select)
    results.check_writable_dir(out_dir)

    # A stop signal (Ctrl-C, SIGTERM, SIGHUP) interrupts only the benchmarks themselves
    # (stops_raise around pytest); while servers and the proxy start and stop and while the
    # result is saved it is held, and the run ends as interrupted once that work is done.
    with stop_handlers(), stops_held(), stops_in_callbacks_unprinted():
        stack = contextlib.ExitStack()
        try:
            given = {"postgresql": postgres_url, **(urls or {})}
            context = start(stack, backends, profile, server_urls(given), rtt_ms)
            context.repeat = repeat
            scratch = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="sqlabench-run-"))
            )
            args = [
                *(str(q.path) for q in chosen),
                # progress and summary come from sqlabench; pytest's own reporter stays silent;
                # the plugin comes from -p, never from a conftest beside the question modules
                "-p", "no:terminal", "-p", "no:cacheprovider", "-p", "sqlabench.plugin",
                # unraisable exceptions go to our hook (below), not to pytest's warnings
                "-p", "no:unraisableexception",
                "--noconftest",
                "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
                f"-c={question_registry.PYTEST_INI}",
                f"--rootdir={question_registry.questions_dir()}",
                "--benchmark-sort=fullname", "--benchmark-quiet",
                *TIMING[profile],
            ]  # fmt: skip
            if select:
                args += ["-k", select]
            passes: list[dict[str, Any]] = []
            exit_code: int = pytest.ExitCode.OK
            for number in range(1, repeat + 1):
                if stopping.requested():  # a stop held between passes: run no more
                    exit_code = pytest.ExitCode.INTERRUPTED
                    break
                exit_code = _worker_pass(
                    context, chosen, backends, profile, rtt_ms, args, list(only),
                    number, repeat, scratch, passes,
                )  # fmt: skip
                if exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                    break
            counts: dict[str, dict[str, float]] = {}
            if (
                instructions
                and passes
                and exit_code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
                and not stopping.requested()
            ):
                counts = _counting_pass(
                    context, chosen, profile, select, scratch / "counting", passes[-1], only
                )
            # a stop held after the last benchmark (while pytest-benchmark saved its JSON)
            # leaves a complete run: it is saved as such, and the run still ends as stopped
            path, complete = _save(
                context, chosen, profile, repeat, select, exit_code, passes, out_dir, counts
            )
        finally:
            try:
                stack.close()
            finally:
                # a stop that arrived while saving or stopping has been handled: the run ends
                # as interrupted below, it must not also be raised when the held block ends
                interrupted = stopping.requested()
                stopping.acknowledge()
    if interrupted or exit_code == pytest.ExitCode.INTERRUPTED:
        raise RunInterrupted(path, complete)
    assert path is not None
    result = results.load(path)
    return RunOutcome(path, result, len(result.info.failures))


@contextlib.contextmanager
def stops_in_callbacks_unprinted() -> Iterator[None]:
    """A stop signal that lands in a weakref callback or __del__ (SQLAlchemy runs many) is
    swallowed by Python and printed with a traceback; the stop is still known (the plugin
    starts no further benchmark), so that print is only noise to the user and is left out.
    Every other unraisable exception is printed as before."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _worker_pass(
    context: RunContext,
    chosen: list[question_registry.Question],
    backends: list[Backend],
    profile: str,
    rtt_ms: float,
    args: list[str],
    only: list[str],
    number: int,
    repeat: int,
    scratch: Path,
    passes: list[dict[str, Any]],
) -> int:
    """Run pass `number` in a fresh worker process (sqlabench.worker); its pytest exit code.

    What the worker measured joins `passes`, what failed, was skipped or cut short joins the
    run's context. Bad input the worker found before any benchmark (an --only nothing
    answers, a server that went away) is raised as one line when no earlier pass ran.
    """
    spec: worker.WorkerSpec = {
        "questions": [q.name if q.module else str(q.path) for q in chosen],
        "backends": [b.name for b in backends], "profile": profile, "rtt_ms": rtt_ms,
        "pytest_args": [*args, f"--benchmark-json={scratch / f'pass-{number}.json'}"],
        "only": only, "number": number, "repeat": repeat,
    }  # fmt: skip
    context.pass_number = number
    # a hash seed of its own per worker: hash order is one of the things that moves a
    # process's timings, and the headline is meant to sample it (pyperf does the same)
    env = {
        **context.counting_env(),
        "PYTHONHASHSEED": str(random.randrange(1, 2**32)),
        # each database is seeded once per run, by the first worker that needs its dataset
        RUN_DIR_ENV: str(scratch / "shared"),
    }
    (scratch / "shared").mkdir(exist_ok=True)
    try:
        status = worker.run_worker(spec, scratch, env)
        stopped = False
    except worker.WorkerStopped as stop:
        status, stopped = stop.status, True
    if status is None:
        if stopped:
            return pytest.ExitCode.INTERRUPTED
        context.failures.append(
            {"benchmark": "(session)", "error": f"the worker process of pass {number} died"}
        )
        return pytest.ExitCode.INTERNAL_ERROR
    if status.get("unknown"):  # nothing ran: said before any benchmark
        raise SqlabenchError(
            f"--only {', '.join(map(repr, status['unknown']))}: no benchmark of this "
            f"run has that id ({'+'.join(q.name for q in chosen)} on "
            f"{', '.join(b.name for b in backends)}; ids as in a result file)"
        )
    if "error" not in status and "exit_code" not in status:
        status["error"] = f"the worker process of pass {number} ended without saying how"
    if "error" in status:
        crashed = status.get("exit_code") == pytest.ExitCode.INTERNAL_ERROR
        if not passes and not context.finished_any and not crashed:
            raise SqlabenchError(status["error"])
        context.failures.append({"benchmark": "(session)", "error": status["error"]})
        return pytest.ExitCode.INTERNAL_ERROR
    # a benchmark failing the same way in every worker is one failure
    context.failures += [f for f in status.get("failures", []) if f not in context.failures]
    context.interrupted += status.get("interrupted", [])
    if number == 1:
        context.skipped += status.get("skipped", [])
    context.done, context.total = status.get("done", 0), status.get("total", 0)
    context.finished_any = context.finished_any or bool(status.get("finished_any"))
    if status.get("json") is not None:
        passes.append(status["json"])  # type: ignore[arg-type]
    return pytest.ExitCode.INTERRUPTED if stopped else status.get("exit_code", 0)


def start(
    stack: contextlib.ExitStack,
    backends: list[Backend],
    profile: str,
    urls: dict[str, str | None],
    rtt_ms: float,
    lock: bool = True,
) -> RunContext:
    """Start what the run needs (its families' servers, their locks, the latency proxy).

    A worker process (`lock=False`) reaches the servers its runner started and locked."""
    servers: dict[str, Target] = {}
    direct: dict[str, Target] = {}
    versions: dict[str, str] = {}
    latency_path = None
    for family in dict.fromkeys(b.family for b in backends):
        if family.url_env is None:
            continue  # no server: each backend's database is a file made when first used
        server = stack.enter_context(family.server(urls.get(family.name)))
        assert server is not None
        if lock:
            stack.enter_context(exclusive_use(server))
        versions[family.name] = prepare(server)
        servers[family.name] = server
        if latency_path is None and family.capabilities.latency_proxy:
            latency_path = stack.enter_context(injected_latency(server, rtt_ms))
            if latency_path is not None:
                direct[family.name], servers[family.name] = server, latency_path.target
    context = RunContext(
        backends, profile, urls, servers, versions,
        rtt_ms=rtt_ms, direct=direct, path=latency_path,
    )  # fmt: skip
    stack.callback(context.close)
    return context


def _save(
    context: RunContext,
    chosen: list[question_registry.Question],
    profile: str,
    repeat: int,
    select: str | None,
    exit_code: int,
    passes: list[dict[str, Any]],
    out_dir: str | Path,
    counts: dict[str, dict[str, float]] | None = None,
) -> tuple[Path | None, bool]:
    """Write the run's result file and say whether it is complete.

    No file (None) when the run was stopped before any benchmark ended.
    """
    interrupted = exit_code == pytest.ExitCode.INTERRUPTED
    if interrupted and not context.finished_any:
        return None, False
    if interrupted:
        context.failures.append(
            {"benchmark": "(session)", "error": f"interrupted by {stop_signal_name()}"}
        )
    elif exit_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise SqlabenchError(
            f"no benchmark matches -k {select!r}" if select else "no benchmark to run"
        )
    elif exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        if not passes and not context.failures and context.done == 0:
            raise SqlabenchError(f"the benchmark session stopped early (pytest exit {exit_code})")
        # keep what was measured; the run is marked incomplete and fails
        context.failures.append(
            {"benchmark": "(session)", "error": f"pytest stopped early with exit {exit_code}"}
        )
    # pytest-benchmark writes no JSON when no benchmark got as far as timing: the run is
    # still recorded, with its failures
    data = results.merge_passes(passes) if passes else {"benchmarks": []}
    for bench in data["benchmarks"]:
        bench.setdefault("extra_info", {}).update((counts or {}).get(bench["name"], {}))
    complete = (
        exit_code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        and len(passes) == repeat
        and context.done == context.total
    )
    names = [q.name for q in chosen]
    data[results.RESULT_KEY] = context.run_info(names, complete, chosen).to_json()
    stem = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{'+'.join(names)}-{profile}"
    return save_result(data, out_dir, stem), complete


def _counting_pass(
    context: RunContext,
    chosen: list[question_registry.Question],
    profile: str,
    select: str | None,
    out: Path,
    timed: dict[str, Any],
    only: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Count each benchmark's operation in a separate process; counts by benchmark name.

    The process runs the same selection in the plugin's standalone mode, straight to the
    server (never through an injected latency: counts do not depend on it), under callgrind
    where it can. A stop signal ends it at once; the timed result is kept either way, and
    the run records what the pass did in `counting`.
    """
    tool = counting.counting_tool()
    counted = [q for q in chosen if q.name not in counting.NOT_COUNTED]
    if not counted:
        context.counting = {"tool": tool.description, "benchmarks_counted": 0,
                            "error": "no question here is counted (pools never is)"}  # fmt: skip
        return {}
    # too long to run under callgrind (from the timed pass): Python calls only. The counting
    # processes go straight to the server: an injected latency is taken off each statement
    rtt = context.rtt_ms / 1000
    long = [
        str(b["fullname"])
        for b in timed.get("benchmarks", [])
        if float(b["stats"]["median"])
        - rtt * float((b.get("extra_info") or {}).get("statements") or 0)
        > counting.INSTRUCTIONS_CAP_S
    ]
    print(f"counting pass: {tool.description}", file=sys.__stderr__, flush=True)
    args = [
        *(str(q.path) for q in counted),
        "-p", "sqlabench.plugin", "--noconftest", "-p", "no:cacheprovider", "-q",
        "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        f"-c={question_registry.PYTEST_INI}",
        f"--rootdir={question_registry.questions_dir()}",
        "--benchmark-disable", f"--sqlabench-profile={profile}",
        *(f"--sqlabench-backend={b.name}" for b in context.backends),
    ]  # fmt: skip
    if select:
        args += ["-k", select]
    if only:
        # exactly the counted benchmarks the timed pass ran: a value of --only that selects
        # only benchmarks never counted (pools) would select nothing in the counting process
        ran = [
            str(b["name"])
            for b in timed.get("benchmarks", [])
            if (b.get("extra_info") or {}).get("question") not in counting.NOT_COUNTED
        ]
        if not ran:
            none_counted = "--only selected no benchmark that is counted"
            context.counting = {
                "tool": tool.description, "benchmarks_counted": 0, "error": none_counted,
            }  # fmt: skip
            return {}
        args += selection.child_args(ran)
    started = time.monotonic()
    try:
        with stopping.stops_raise():
            counts, error = counting.run_counting_pass(
                args, out, context.counting_env(), tool, COUNTING_TIMEOUT, long
            )
    except KeyboardInterrupt:  # the child is killed by subprocess.run; the run ends stopped
        counts, error = {}, f"stopped by {stop_signal_name()}"
    context.counting = {
        "tool": tool.description,
        "instructions": tool.instructions,
        "py_calls": {"warmup": counting.PY_CALLS_WARMUP, "counted": counting.PY_CALLS_COUNTED},
        "instructions_calls": {
            "warmup": counting.INSTRUCTIONS_WARMUP,
            "counted": counting.INSTRUCTIONS_COUNTED,
        },
        "rounds": {"warmup": counting.ROUNDS_WARMUP, "counted": counting.ROUNDS_COUNTED},
        "instructions_cap_s": counting.INSTRUCTIONS_CAP_S,
        "not_counted": sorted(counting.NOT_COUNTED),
        "benchmarks_counted": len(counts),
        "benchmarks_with_instructions": sum(1 for c in counts.values() if "instructions" in c),
        "seconds": round(time.monotonic() - started, 1),
        "error": context.mask(error) if error else None,
    }
    if error:
        print(f"counting pass: {context.mask(error)}", file=sys.__stderr__, flush=True)
    return counts


COUNTING_TIMEOUT = 3600.0
"""The counting pass of the whole quick profile takes minutes; an hour means it hung."""


def save_result(data: dict[str, Any], out_dir: str | Path, stem: str) -> Path:
    """Write the result into `out_dir`; if that fails, into a fallback directory, and say so.

    A run's measurements are never dropped because the results directory went away, became
    unwritable or filled up: they go to the first fallback that takes them, and the one-line
    error names both the problem and where the result is.
    """
    try:
        return results.write_new(data, out_dir, stem)
    except SqlabenchError as problem:
        for fallback in fallback_dirs():
            try:
                rescued = results.write_new(data, fallback, stem)
            except SqlabenchError:
                continue
            raise ResultRescued(f"{problem}; the result was saved to {rescued} instead") from None
        tried = ", ".join(map(str, fallback_dirs()))
        raise SqlabenchError(f"{problem}; no fallback directory took it either ({tried})") from None


def fallback_dirs() -> list[Path]:
    """Where a result goes when its own directory cannot take it: temp dir, then HOME."""
    return [
        Path(tempfile.gettempdir()) / "sqlabench-rescued",
        Path.home() / ".local" / "state" / "sqlabench" / "rescued",
    ]
