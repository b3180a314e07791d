"""One pass of a run, in a fresh worker process (`python -m sqlabench.worker SPEC OUT`).

Wall time on a shared VM moves 10-25% from one process to the next (hash seed, memory layout,
the neighbours): more rounds inside one process do not shrink that, more processes do (pyperf's
design). So the runner measures each pass in a new process with its own hash seed, one pass
after another, each running every selected benchmark (drift lands on all of them alike), and
joins the passes; each benchmark keeps each process's median (`pass_medians`) and its headline
is the median of those with an interval over processes (`results.headline_time`).

The runner has already checked the input, started the servers, taken their locks and prepared
them; the worker reaches the same servers through the URLs in its environment (never on its
command line: a URL may hold a password), starts its own latency proxy when the run injects
one, runs pytest-benchmark in-process as a pass always ran, and writes what it measured and how
the session ended to OUT as one JSON object (`WorkerStatus`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

import pytest

from sqlabench import files, selection, stopping
from sqlabench import questions as question_registry
from sqlabench.errors import SqlabenchError
from sqlabench.masking import mask_text


class WorkerSpec(TypedDict):
    """What the runner asks of one worker (written to a file the worker reads)."""

    questions: list[str]
    """Question names, or module paths for users' own files."""
    backends: list[str]
    profile: str
    rtt_ms: float
    pytest_args: list[str]
    only: list[str]
    number: int
    repeat: int


class WorkerStatus(TypedDict, total=False):
    """What one worker reports back (OUT)."""

    exit_code: int
    json: dict[str, Any] | None
    """pytest-benchmark's JSON of the pass, with the plugin's `sqlabench` run info."""
    unknown: list[str]
    """--only values no benchmark answered to (nothing ran)."""
    done: int
    total: int
    finished_any: bool
    failures: list[dict[str, str]]
    skipped: list[dict[str, str]]
    interrupted: list[dict[str, Any]]
    error: str
    """A one-line error that kept the pass from starting (a server gone, a path unholdable)."""


def main(argv: list[str]) -> int:
    """Run the pass SPEC describes and write its WorkerStatus to OUT."""
    from sqlabench.backends import resolve_backends
    from sqlabench.families import server_urls
    from sqlabench.plugin import RunnerHooks
    from sqlabench.runner import start, stops_in_callbacks_unprinted

    _die_with_runner()
    spec_path, out = Path(argv[0]), Path(argv[1])
    spec: WorkerSpec = json.loads(spec_path.read_text())
    status: WorkerStatus = {}
    stopping.reset()
    with stopping.stop_handlers(), stopping.stops_held(), stops_in_callbacks_unprinted():
        stack = contextlib.ExitStack()
        context = None
        try:
            chosen = question_registry.resolve(spec["questions"])
            backends = resolve_backends(spec["backends"])
            context = start(
                stack, backends, spec["profile"], server_urls({}), spec["rtt_ms"], lock=False
            )
            context.repeat, context.pass_number = spec["repeat"], spec["number"]
            hooks = RunnerHooks(context, chosen)
            chooser = selection.OnlyIds(spec["only"])
            plugins: list[object] = [hooks, chooser] if spec["only"] else [hooks]
            exit_code: int
            try:
                with stopping.stops_raise():
                    exit_code = pytest.main(spec["pytest_args"], plugins=plugins)
            except KeyboardInterrupt:  # a stop between pytest's own protected steps
                exit_code = pytest.ExitCode.INTERRUPTED
            if stopping.requested():
                exit_code = pytest.ExitCode.INTERRUPTED
            status = WorkerStatus(
                exit_code=int(exit_code), json=hooks.json, unknown=list(chooser.unknown),
                done=context.done, total=context.total, finished_any=context.finished_any,
                failures=context.failures, skipped=context.skipped,
                interrupted=context.interrupted,
            )  # fmt: skip
        except SqlabenchError as problem:
            status["error"] = context.mask(str(problem)) if context else mask_text(str(problem))
        except Exception as crash:  # said as a failure of the pass, never lost
            text = f"the worker of pass {spec['number']} crashed: {type(crash).__name__}: {crash}"
            status = WorkerStatus(
                error=context.mask(text) if context else mask_text(text),
                exit_code=int(pytest.ExitCode.INTERNAL_ERROR),
            )
        finally:
            if "exit_code" not in status and stopping.requested():
                status["exit_code"] = int(pytest.ExitCode.INTERRUPTED)
            try:
                stack.close()
            finally:
                files.write_atomic(out, json.dumps(status), overwrite=True)
                stopping.acknowledge()
    return 0


def _die_with_runner() -> None:
    """A worker has its own session, so a terminal's signals reach only the runner; if the
    runner itself is killed (SIGKILL, a CI timeout), the kernel stops the worker as Ctrl-C
    would (Linux), so no worker runs on after the run's lock and directory are gone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the runner was gone before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_worker(spec: WorkerSpec, scratch: Path, env: dict[str, str]) -> WorkerStatus | None:
    """Run one worker to its end; its status, or None when it died without one.

    The worker has its own session, so a terminal's Ctrl-C reaches only the runner, which
    passes one SIGINT on (two would land in the middle of the worker's own stopping) and
    waits for it to save what it measured. A stop signal raised here is raised again after.
    """
    number = spec["number"]
    spec_path = scratch / f"worker-{number}.spec.json"
    out = scratch / f"worker-{number}.status.json"
    files.write_atomic(spec_path, json.dumps(spec), overwrite=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlabench.worker", str(spec_path), str(out)],
        env={**os.environ, **env}, start_new_session=True,
    )  # fmt: skip
    stopped = False
    try:
        with stopping.stops_raise():
            _wait_at_once(process)
    except KeyboardInterrupt:
        stopped = True
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
    finally:
        if process.poll() is None:
            # it saves what it finished and stops its proxies: a minute at most
            with stopping.stops_held(deliver=False):
                try:
                    process.wait(timeout=WORKER_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    status: WorkerStatus | None = None
    with contextlib.suppress(OSError, ValueError):
        status = json.loads(out.read_text())
    if status is not None and stopped:
        status["exit_code"] = int(pytest.ExitCode.INTERRUPTED)
    if stopped:
        raise WorkerStopped(status)
    return status


def _wait_at_once(process: subprocess.Popen[bytes]) -> None:
    """Wait for the worker to end; a stop signal raises here at once.

    Not Popen.wait(): on a KeyboardInterrupt it first waits a quarter of a second for the
    child, on the assumption that the terminal's Ctrl-C reached the child too. The worker has
    its own session and hears of the stop only from the runner, so meanwhile it went on to
    finish a benchmark and start the next (tests/test_faults.py caught it).
    """
    if hasattr(os, "waitid"):
        # wait for the exit without reaping it, so Popen still collects its status below
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    else:  # pragma: no cover - platforms without waitid
        while process.poll() is None:
            time.sleep(0.02)
    process.wait()


class WorkerStopped(KeyboardInterrupt):
    """The run was stopped while a worker ran; `status` is what the worker saved."""

    def __init__(self, status: WorkerStatus | None) -> None:
        super().__init__("stopped")
        self.status = status


WORKER_STOP_TIMEOUT = 60.0


if __name__ == "__main__":  # pragma: no cover - run as a process by run_worker
    sys.exit(main(sys.argv[1:]))
