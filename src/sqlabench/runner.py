"""Running questions: check the input, prepare the databases, run pytest-benchmark, store.

Everything a user can get wrong is checked before the first benchmark starts, so a bad option
costs a second, not a run.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sqlabench import questions as question_registry
from sqlabench import results
from sqlabench.backends import postgres_target, resolve_backends
from sqlabench.database import prepare_postgres
from sqlabench.errors import SqlabenchError
from sqlabench.plugin import RunContext, RunnerHooks

DEFAULT_OUT = Path("results/runs")

# pytest-benchmark's calibration per profile: rounds are single operations (all take > 10 µs),
# warm-up runs first so prepared statements and caches are in their steady state.
TIMING: dict[str, list[str]] = {
    "smoke": [
        "--benchmark-min-rounds=3", "--benchmark-max-time=0.005", "--benchmark-warmup=off",
    ],
    "quick": [
        "--benchmark-min-rounds=25", "--benchmark-max-time=0.25", "--benchmark-min-time=0.00002",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=20",
    ],
    "full": [
        "--benchmark-min-rounds=100", "--benchmark-max-time=2.0", "--benchmark-min-time=0.00002",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=200",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    result: results.ResultFile
    failed: int
    """How many benchmarks failed (errors or failed verification)."""


def run(
    question_names: list[str] | tuple[str, ...],
    profile: str = "quick",
    backend_names: list[str] | tuple[str, ...] = (),
    postgres_url: str | None = None,
    out_dir: str | Path = DEFAULT_OUT,
    select: str | None = None,
) -> RunOutcome:
    """Run the questions' benchmarks and write one new result file into `out_dir`."""
    chosen = question_registry.resolve(list(question_names))
    question_registry.check_profile(profile)
    backends = resolve_backends(list(backend_names))
    out = results.ensure_writable_dir(out_dir)
    names = [q.name for q in chosen]

    with contextlib.ExitStack() as stack:
        postgres = version = None
        if any(b.server == "postgresql" for b in backends):
            postgres = stack.enter_context(postgres_target(postgres_url))
            version = prepare_postgres(postgres)
        context = RunContext(backends, profile, postgres_url, postgres, version)
        stack.callback(context.close)
        hooks = RunnerHooks(context, names)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sqlabench-run-")))
        args = [
            *(str(q.path) for q in chosen),
            # progress and summary come from sqlabench; pytest's own reporter stays silent
            "-p", "no:terminal", "-p", "no:cacheprovider",
            f"-c={question_registry.benchmarks_dir() / 'pytest.ini'}",
            f"--rootdir={question_registry.benchmarks_dir()}",
            f"--benchmark-json={scratch / 'pytest-benchmark.json'}",
            "--benchmark-sort=fullname", "--benchmark-quiet",
            *TIMING[profile],
        ]  # fmt: skip
        if select:
            args += ["-k", select]
        exit_code = pytest.main([a for a in args if a], plugins=[hooks])
        if exit_code == pytest.ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
        if exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            raise SqlabenchError(f"the benchmark session stopped early (pytest exit {exit_code})")
        data = hooks.json
        if data is None:
            raw = scratch / "pytest-benchmark.json"
            data = json.loads(raw.read_text()) if raw.exists() else None
        if data is None or results.RESULT_KEY not in data:
            raise SqlabenchError("no benchmark ran, so no result was written")
        stem = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{'+'.join(names)}-{profile}"
        path = results.write_new(data, out, stem)
    result = results.load(path)
    return RunOutcome(path, result, len(result.info.failures))
