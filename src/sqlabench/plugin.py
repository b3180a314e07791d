"""The pytest plugin the question modules run under (`-p sqlabench.plugin`; benchmarks/conftest.py).

It turns `sqlabench run` options (or the same `--sqlabench-*` pytest options) into a RunContext:
the chosen backends, the profile, the databases (starting an embedded PostgreSQL when no URL is
given), the seeded data, progress lines and the `sqlabench` object of the result file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

import sqlabench
from sqlabench import counting, files, stopping
from sqlabench.backends import Backend, Target, resolve_backends
from sqlabench.errors import SqlabenchError
from sqlabench.families import Family, families, server_urls
from sqlabench.latency import TOLERANCE, InjectedPath, injected_latency
from sqlabench.masking import mask_text
from sqlabench.measure import injected_slowdown, injected_work_fraction
from sqlabench.questions import PROFILES, Question, discover, harness_hash
from sqlabench.results import (
    COUNT_FIELDS,
    RESULT_KEY,
    SCHEMA_VERSION,
    BackendInfo,
    RunInfo,
    now_iso,
)
from sqlabench.stopping import stop_signal_name, stops_held
from sqlabench.summary import format_time

__all__ = [
    "pytest_addoption",
    "pytest_benchmark_generate_json",
    "pytest_benchmark_update_json",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_runtest_protocol",
    "pytest_sessionfinish",
    "pytest_unconfigure",
    "sqlabench_run",
]

_CONTEXT_KEY = pytest.StashKey["RunContext"]()

RUN_DIR_ENV = "SQLABENCH_RUN_DIR"
"""Set by the runner for its worker processes: the run's directory, shared by its workers."""


class RunContext:
    """Everything one run shares: backends, profile, databases, seeded data and provenance.

    Databases are per family: `urls` names a family's server (None: the family finds or starts
    its own), `servers` holds those the runner already started (reached through the latency
    proxy when the run injects one), `direct` the same servers reached straight, and `versions`
    their versions. A family the runner did not start is started on first use.
    """

    def __init__(
        self,
        backends: list[Backend],
        profile: str,
        urls: dict[str, str | None] | None = None,
        servers: dict[str, Target] | None = None,
        versions: dict[str, str] | None = None,
        rtt_ms: float = 0.0,
        direct: dict[str, Target] | None = None,
        path: InjectedPath | None = None,
    ) -> None:
        self.backends = backends
        self.profile = profile
        self.rtt_ms = rtt_ms
        self.path = path
        self._direct = dict(direct or {})
        self.started = now_iso()
        self.failures: list[dict[str, str]] = []
        self.interrupted: list[dict[str, Any]] = []
        """Benchmarks a stop signal cut short: left out of the result, with how far they got."""
        self.finished: set[str] = set()
        """Node ids of this pass's benchmarks whose timed test ran to its end (passed or failed)."""
        self.failed: set[str] = set()
        """Node ids of this pass's benchmarks that failed: left out of the result, in `failures`."""
        self.finished_any = False
        """Whether any benchmark of any pass ran to its end."""

        self.skipped: list[dict[str, str]] = []
        self.repeat = 1
        self.pass_number = 1
        self.total = 0
        self.done = 0
        self._urls = dict(urls or {})
        self._servers = dict(servers or {})
        self._versions = dict(versions or {})
        self._stack = contextlib.ExitStack()
        shared = os.environ.get(RUN_DIR_ENV)
        if shared:
            # a worker process: SQLite files and the record of what each database holds are
            # the run's, kept by its runner from one worker to the next
            self._workdir = Path(shared)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="sqlabench-"))
            self._stack.callback(shutil.rmtree, self._workdir, ignore_errors=True)
        self._datasets: dict[str, str] = {}
        self.counting: dict[str, Any] | None = None
        """What the counting pass did, for the result (None: no counting pass)."""
        self._case_paths: dict[float, InjectedPath | SqlabenchError] = {}
        self.active_path: InjectedPath | None = None
        """The path the running benchmark asked for with `latency_path`, if any."""

    def _server(self, family: Family) -> Target | None:
        """The family's server for this run, started (and prepared) on first use."""
        if family.url_env is None:
            return None
        server = self._servers.get(family.name)
        if server is None:
            server = self._stack.enter_context(family.server(self._urls.get(family.name)))
            assert server is not None
            self._servers[family.name] = server
            self._versions[family.name] = family.prepare(server)
        return server

    def target(self, backend: Backend) -> Target:
        family = backend.family
        return family.target(self._server(family), backend, self._workdir)

    def seeded(self, backend: Backend, dataset: str, seed: Callable[[Target], None]) -> Target:
        """The backend's database holding `dataset`, seeded once per database and run.

        Backends sharing a server share its data; seeding another dataset replaces the tables.
        """
        target = self.target(backend)
        # seeding goes straight to the server, not through an injected latency (whose port
        # is each worker's own): the database is known by its direct address
        direct = self._direct.get(backend.server, target)
        if self._holds(direct) != dataset:
            self._record(direct, None)  # a seed cut short leaves no claim behind
            seed(direct)
            self._record(direct, dataset)
        return target

    def _holds(self, target: Target) -> str | None:
        """The dataset this run last seeded into `target`: in this process, or, in a worker,
        in an earlier worker of the same run (the run holds the database's lock throughout,
        so nothing else has changed it since)."""
        known = self._datasets.get(repr(target))
        if known is None and os.environ.get(RUN_DIR_ENV):
            with contextlib.suppress(OSError):
                return self._seeded_file(target).read_text(encoding="utf-8")
        return known

    def _record(self, target: Target, dataset: str | None) -> None:
        if dataset is None:
            self._datasets.pop(repr(target), None)
        else:
            self._datasets[repr(target)] = dataset
        if os.environ.get(RUN_DIR_ENV):
            marker = self._seeded_file(target)
            if dataset is None:
                marker.unlink(missing_ok=True)
            else:
                files.write_atomic(marker, dataset, overwrite=True)

    def _seeded_file(self, target: Target) -> Path:
        key = hashlib.sha256(repr(target).encode()).hexdigest()[:16]
        return self._workdir / f"seeded-{key}.txt"

    def paths(self) -> list[InjectedPath]:
        """Every latency path running: the run's, and those benchmarks asked for."""
        started = [p for p in self._case_paths.values() if isinstance(p, InjectedPath)]
        return [self.path, *started] if self.path else started

    def latency_path(self, rtt_ms: float) -> InjectedPath:
        """A proxy adding `rtt_ms` in front of the run's server, for one benchmark's own
        connections (the pools grid's latency variant); started and checked on first use, as
        the run's own path is, and kept to the end of the run. A path that cannot be held
        fails every benchmark that asks for it, with the reason."""
        known = self._case_paths.get(rtt_ms)
        if known is None:
            server = next(
                (s for s in [*self._direct.values(), *self._servers.values()]
                 if s.family.capabilities.latency_proxy),
                None,
            )  # fmt: skip
            if server is None:
                raise SqlabenchError("no database server in this run to inject latency for")
            try:
                known = self._stack.enter_context(injected_latency(server, rtt_ms))
                assert known is not None
                known.proxy.seen()  # the check's own round trips are no benchmark's
            except SqlabenchError as refused:
                known = refused
            self._case_paths[rtt_ms] = known
        if isinstance(known, SqlabenchError):
            raise known
        self.active_path = known
        return known

    def counting_env(self) -> dict[str, str]:
        """What the counting process needs to reach the same servers, straight, not proxied.

        Passed in its environment, never on its command line (a URL may hold a password).
        """
        env: dict[str, str] = {}
        for server in {**self._servers, **self._direct}.values():
            env.update(server.family.environment(server))
        return env

    def server_version(self, backend: Backend) -> str:
        family = backend.family
        if family.url_env is None:
            return family.version(self.target(backend))
        self.target(backend)
        return self._versions.get(family.name) or "unknown"

    def mask(self, text: str) -> str:
        if not self._servers:
            return mask_text(text)
        for server in self._servers.values():
            text = server.mask(text)
        return text

    def backend_info(self) -> tuple[BackendInfo, ...]:
        infos = []
        for b in self.backends:
            used = b.family.url_env is None or b.server in self._servers
            infos.append(
                BackendInfo(
                    name=b.name,
                    server=b.server,
                    mode=b.mode,
                    dialect=b.dialect,
                    driver=b.driver,
                    driver_version=b.driver_version(),
                    server_version=self.server_version(b) if used else "not used",
                    url=self._server_display(b) if used else "not used",
                    settings=dict(b.settings),
                )
            )
        return tuple(infos)

    def _server_display(self, backend: Backend) -> str:
        direct = self._direct.get(backend.server)
        if direct is not None:
            return f"{direct.display}, through the latency proxy"
        return self.target(backend).display

    def run_info(
        self, questions: list[str], complete: bool, chosen: list[Question] | None = None
    ) -> RunInfo:
        ran = [q for q in chosen or discover().values() if q.name in questions]
        return RunInfo(
            schema_version=SCHEMA_VERSION,
            questions=tuple(questions),
            profile=self.profile,
            started=self.started,
            finished=now_iso(),
            complete=complete,
            suite_version=sqlabench.__version__,
            suite_commit=suite_commit(),
            python=platform.python_version(),
            sqlalchemy=sqlalchemy.__version__,
            machine=machine_id(),
            backends=self.backend_info(),
            rtt_ms=self.rtt_ms,
            repeat=self.repeat,
            rtt_measured_ms=self.path.measured.measured_ms if self.path else None,
            rtt_base_ms=self.path.measured.base_ms if self.path else None,
            scenario_hashes={q.name: q.source_hash() for q in ran},
            question_sources={q.name: q.source for q in ran},
            harness_hash=harness_hash(),
            failures=tuple(self.failures),
            interrupted=tuple(self.interrupted),
            skipped=tuple(self.skipped),
            injected_slowdown=injected_slowdown(),
            injected_work=injected_work_fraction(),
            counting=self.counting,
        )

    def close(self) -> None:
        self._stack.close()


def suite_commit() -> str:
    """The checkout's commit, with `-dirty` when benchmark or library files differ from it."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "src" / "sqlabench" / "questions").is_dir():
        return "unknown"  # installed from a wheel: the git repository around it is not ours
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "benchmarks"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")  # fmt: skip


def machine_id() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus {platform.system()}"


def context_of(config: pytest.Config) -> RunContext:
    return config.stash[_CONTEXT_KEY]


# --- hooks ----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sqlabench")
    group.addoption(
        "--sqlabench-backend",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to run (repeatable; default: all)",
    )
    group.addoption(
        "--sqlabench-profile",
        default="quick",
        choices=list(PROFILES),
        help="data sizes",
    )
    for family in families().values():
        if family.url_option:
            group.addoption(
                f"--sqlabench-{family.url_option}", default=None, metavar="URL",
                help=f"{family.title} server URL (default: ${family.url_env}{family.url_default})",
            )  # fmt: skip


class RunnerHooks:
    """Handed to pytest.main by the runner: carries its already prepared RunContext."""

    def __init__(self, context: RunContext, chosen: list[Question]) -> None:
        self.context = context
        self.chosen = chosen
        self.questions = [q.name for q in chosen]
        self.json: dict[str, Any] | None = None


def _runner_hooks(config: pytest.Config) -> RunnerHooks | None:
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, RunnerHooks):
            return plugin
    return None


def pytest_configure(config: pytest.Config) -> None:
    runner = _runner_hooks(config)
    if runner is not None:
        config.stash[_CONTEXT_KEY] = runner.context
        # plain Python tracebacks (the terminal plugin that owns --tb is off): pytest's own
        # style re-parses source with ast, which can fail after many greenlet switches and
        # take the whole session down with it
        config.option.tbstyle = "native"
        return
    try:
        backends = resolve_backends(config.getoption("sqlabench_backend"))
    except SqlabenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    urls = server_urls(
        {f.name: config.getoption(f"sqlabench_{f.url_option}") for f in families().values()
         if f.url_option}
    )  # fmt: skip
    config.stash[_CONTEXT_KEY] = RunContext(backends, config.getoption("sqlabench_profile"), urls)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _runner_hooks(config) is None and _CONTEXT_KEY in config.stash:
        config.stash[_CONTEXT_KEY].close()


def pytest_collection_finish(session: pytest.Session) -> None:
    context_of(session.config).total = len(session.items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Through injected latency, record the round-trip delay the benchmark really saw.

    The path is measured before the run on one idle connection; under a benchmark's own load
    (many connections, a busy machine) it can drift. The proxy keeps the added delay of every
    request/reply pair; a benchmark whose median is off the asked RTT by more than the run's
    tolerance fails, saying so: its numbers would answer a question nobody asked.
    """
    ctx = context_of(item.config)
    for started in ctx.paths():
        started.proxy.seen()  # forget what came before this benchmark
    ctx.active_path = None
    outcome = yield
    path, ctx.active_path = ctx.active_path or ctx.path, None
    if path is None:
        return outcome
    seen = path.proxy.seen()
    if not seen.get("round_trips"):
        return outcome  # nothing went through the proxy (a SQLite backend)
    bench = getattr(item, "funcargs", {}).get("benchmark")
    if bench is not None:
        bench.extra_info["rtt_seen_ms"] = {
            key: seen[key] for key in ("p50", "p99", "max", "round_trips")
        }
        if "cores" in seen:
            bench.extra_info["proxy_cpu"] = seen["cores"]
    asked = path.measured.asked_ms
    if abs(seen["p50"] - asked) > TOLERANCE * asked:
        raise AssertionError(
            f"the latency path was off: round trips through it added a median of "
            f"{seen['p50']:.3f} ms (p99 {seen['p99']:.3f}) for {asked:g} ms asked, more than "
            f"{TOLERANCE:.0%} off, so this benchmark's numbers are not kept"
        )
    return outcome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # recorded and reported together: a stop between the two would save a benchmark the run
    # never said was done (or the reverse)
    with stops_held():
        if report.when == "call":
            ctx = context_of(item.config)
            ctx.finished.add(item.nodeid)
            ctx.finished_any = True
            if report.failed:
                ctx.failed.add(item.nodeid)
            elif report.passed and (directory := counting.counting_dir()) is not None:
                _record_counts(item, directory)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            _progress(item, report)


def _record_counts(item: pytest.Item, directory: Path) -> None:
    """The counting process keeps the counts of each benchmark that passed its checks."""
    bench = getattr(item, "funcargs", {}).get("benchmark")
    info = getattr(bench, "extra_info", None) or {}
    # recorded even when empty: the callgrind process's counts are in its dumps, and only
    # a benchmark that passed its checks there may use them
    counting.record(directory, item.name, {k: info[k] for k in COUNT_FIELDS if k in info})


def _progress(item: pytest.Item, report: pytest.TestReport) -> None:
    ctx = context_of(item.config)
    ctx.done += 1
    name = item.name
    if report.skipped:
        reason = _skip_reason(report)
        if ctx.pass_number == 1:
            ctx.skipped.append({"benchmark": name, "reason": ctx.mask(reason)})
        status = f"skipped: {ctx.mask(reason)}"
    elif report.failed:
        message = _failure_message(report)
        ctx.failures.append({"benchmark": name, "error": ctx.mask(message)})
        status = "FAILED: " + ctx.mask(message)
    else:
        status = "ok"
        bench = getattr(item, "funcargs", {}).get("benchmark")
        stats = getattr(getattr(bench, "stats", None), "stats", None)
        if stats is not None and getattr(stats, "data", None):
            status = f"ok  median {format_time(stats.median)}"
    width = len(str(ctx.total or 1))
    label = f"pass {ctx.pass_number}/{ctx.repeat} " if ctx.repeat > 1 else ""
    if counting.counting_dir() is not None:
        label = f"counting {counting.probe_kind()} "
    print(
        f"{label}[{ctx.done:>{width}}/{ctx.total}] {name}  {status}",
        file=sys.__stderr__, flush=True,
    )  # fmt: skip


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return " ".join(str(crash.message).split())
    return " ".join(str(report.longrepr).split())[-300:]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Start no benchmark after a stop signal, even one whose KeyboardInterrupt was lost.

    Python swallows an exception raised in a weakref callback or __del__ (SQLAlchemy runs
    many): the signal is still recorded, and the session ends here, before the next one.
    """
    if stopping.requested():
        item.session.shouldstop = f"stopped by {stop_signal_name()}"
        return True
    return None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """pytest-benchmark saves the JSON here: a second signal must not cut that in half.

    A signal held here is not raised after it either: the session is ending, and the runner
    asks `requested()` as soon as pytest returns.
    """
    with stops_held(deliver=False):
        yield


@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_generate_json(config: pytest.Config, benchmarks: list[Any]) -> None:
    """Leave out every benchmark that failed or that a stop signal cut short, before saving.

    A failed benchmark may have timed all its rounds and then found the work not done (or its
    connection cut mid-round): its numbers must never reach a chart or a gate, and its error
    is already in `failures`.

    Such a benchmark has fewer rounds than it asked for (maybe none: pytest-benchmark would
    crash on it), so its statistics are not comparable with a complete one. It is listed
    under `interrupted` with the rounds it had done. pytest-benchmark's own implementation
    then writes the rest (this one returns None and edits the shared list in place).
    """
    ctx = context_of(config)
    kept = []
    for bench in benchmarks:
        if bench.fullname in ctx.failed:
            continue
        if bench.fullname in ctx.finished:
            kept.append(bench)
            continue
        stats = getattr(bench, "stats", None)
        ctx.interrupted.append(
            {
                "benchmark": bench.name,
                "rounds_done": len(getattr(stats, "data", None) or ()),
                "reason": f"stopped by {stop_signal_name()} before its rounds ended",
            }
        )
    benchmarks[:] = kept


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    ctx = context_of(config)
    runner = _runner_hooks(config)
    questions = runner.questions if runner else sorted(
        {str(b.get("extra_info", {}).get("question")) for b in output_json["benchmarks"]}
    )  # fmt: skip
    complete = ctx.total > 0 and ctx.done == ctx.total
    chosen = runner.chosen if runner else None
    output_json[RESULT_KEY] = ctx.run_info(questions, complete, chosen).to_json()
    if runner is not None:
        runner.json = output_json


@pytest.fixture(scope="session")
def sqlabench_run(request: pytest.FixtureRequest) -> RunContext:
    """The run's context: backends, profile, databases and seeded data."""
    return context_of(request.config)
