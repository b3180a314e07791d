"""Running questions: check the input, prepare the databases, run pytest-benchmark, store.

Everything a user can get wrong is checked before the first benchmark starts, so a bad option
costs a second, not a run.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sqlabench import questions as question_registry
from sqlabench import results
from sqlabench.backends import postgres_target, resolve_backends
from sqlabench.database import exclusive_use, prepare_postgres
from sqlabench.errors import SqlabenchError
from sqlabench.latency import check_rtt, injected_latency
from sqlabench.plugin import RunContext, RunnerHooks

DEFAULT_OUT = Path("results/runs")

# pytest-benchmark's calibration per profile. Operations of 20 µs or more are timed one per
# round; warm-up runs first so prepared statements (psycopg prepares on the 5th execution) and
# SQLAlchemy's compiled cache are in their steady state. Warm-up rounds cost as much as
# measured ones, so slow operations (lazy loading hundreds of rows) keep them few.
TIMING: dict[str, list[str]] = {
    "smoke": [
        "--benchmark-min-rounds=3", "--benchmark-max-time=0.005", "--benchmark-warmup=off",
    ],
    "quick": [
        "--benchmark-min-rounds=5", "--benchmark-max-time=0.15", "--benchmark-min-time=0.00002",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=2",
    ],
    "full": [
        "--benchmark-min-rounds=7", "--benchmark-max-time=1.0", "--benchmark-min-time=0.00002",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=10",
    ],
}  # fmt: skip


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during the benchmarks: what was measured is saved, marked incomplete."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


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
    repeat: int = 1,
) -> RunOutcome:
    """Run the questions' benchmarks and write one new result file into `out_dir`.

    With `rtt_ms`, every PostgreSQL backend reaches its server through a proxy adding that
    round-trip latency, measured before any benchmark runs.
    """
    chosen = question_registry.resolve(list(question_names))
    question_registry.check_profile(profile)
    check_rtt(rtt_ms)
    if not 1 <= repeat <= 100:
        raise SqlabenchError(f"--repeat must be from 1 to 100, not {repeat}")
    backends = resolve_backends(list(backend_names))
    check_selection(select)
    results.check_writable_dir(out_dir)
    names = [q.name for q in chosen]

    with contextlib.ExitStack() as stack:
        postgres = proxied = version = latency_path = None
        if any(b.server == "postgresql" for b in backends):
            postgres = stack.enter_context(postgres_target(postgres_url))
            stack.enter_context(exclusive_use(postgres))
            version = prepare_postgres(postgres)
            proxied, latency_path = stack.enter_context(injected_latency(postgres, rtt_ms))
        context = RunContext(
            backends, profile, postgres_url, proxied, version,
            rtt_ms=rtt_ms, postgres_direct=postgres if latency_path else None,
            path=latency_path,
        )  # fmt: skip
        stack.callback(context.close)
        context.repeat = repeat
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sqlabench-run-")))
        args = [
            *(str(q.path) for q in chosen),
            # progress and summary come from sqlabench; pytest's own reporter stays silent
            "-p", "no:terminal", "-p", "no:cacheprovider",
            "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
            f"-c={question_registry.benchmarks_dir() / 'pytest.ini'}",
            f"--rootdir={question_registry.benchmarks_dir()}",
            f"--benchmark-json={scratch / 'pytest-benchmark.json'}",
            "--benchmark-sort=fullname", "--benchmark-quiet",
            *TIMING[profile],
        ]  # fmt: skip
        if select:
            args += ["-k", select]
        passes: list[dict[str, Any]] = []
        for number in range(1, repeat + 1):
            context.pass_number, context.done = number, 0
            hooks = RunnerHooks(context, names)
            exit_code = pytest.main(args, plugins=[hooks])
            if hooks.json is not None:
                passes.append(hooks.json)
            if exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                break
        interrupted = exit_code == pytest.ExitCode.INTERRUPTED
        if interrupted and context.done == 0 and not passes:
            raise KeyboardInterrupt
        if interrupted:
            context.failures.append({"benchmark": "(session)", "error": "interrupted (Ctrl-C)"})
        elif exit_code == pytest.ExitCode.NO_TESTS_COLLECTED:
            raise SqlabenchError(
                f"no benchmark matches -k {select!r}" if select else "no benchmark to run"
            )
        elif exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            if not passes and not context.failures and context.done == 0:
                raise SqlabenchError(
                    f"the benchmark session stopped early (pytest exit {exit_code})"
                )
            # keep what was measured; the run is marked incomplete and fails
            context.failures.append(
                {"benchmark": "(session)", "error": f"pytest stopped early with exit {exit_code}"}
            )
        # pytest-benchmark writes no JSON when no benchmark got as far as timing: the run is
        # still recorded, with its failures
        data = results.merge_passes(passes) if passes else {"benchmarks": []}
        complete = (
            exit_code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
            and len(passes) == repeat
            and context.done == context.total
        )
        data[results.RESULT_KEY] = context.run_info(names, complete=complete).to_json()
        stem = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{'+'.join(names)}-{profile}"
        path = results.write_new(data, out_dir, stem)
    if interrupted:
        raise RunInterrupted(path)
    result = results.load(path)
    return RunOutcome(path, result, len(result.info.failures))
