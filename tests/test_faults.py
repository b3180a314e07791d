"""Faults at random moments of real runs: whatever happens, nothing measured is lost.

Each trial starts a real `sqlabench run` on a private embedded PostgreSQL (its own data
directory, so the run starts and must stop that server itself), waits for a seeded random
moment after the first benchmark ended, injects one fault, and checks what the README promises:
the documented exit code; one parseable result file and no half-written one; every benchmark in
it complete (exactly those the run reported as done, each with all its rounds, verified);
`complete: false` when stopped early; no process of the run left (server, proxy, workers);
the user's table beside the run unchanged.

The seed is printed and is in every failure message: `SQLABENCH_FAULT_SEED=N` replays a
failure exactly (the moment, not the machine's timing). `make test` runs two or three moments
per fault; `make test-slow` runs ten (SQLABENCH_FAULT_MOMENTS) per fault across whole runs.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT
from sqlabench import results
from sqlabench.embedded import POSTGRES_URL_ENV, embedded_server

BASE_SEED = int(os.environ.get("SQLABENCH_FAULT_SEED") or random.SystemRandom().randrange(10**6))
SLOW_MOMENTS = int(os.environ.get("SQLABENCH_FAULT_MOMENTS") or 10)
RUN_ALL = ("run", "all", "--profile", "quick")
FAST_WINDOW = 25.0
"""make test: moments within the first 25 s after the first benchmark (bulk_insert's rounds)."""
PROGRESS = re.compile(r"^(?:pass \d+/\d+ )?\[\s*\d+/(\d+)\] ")
"""A progress line: `[  k/N] id  ok ...`, after `pass p/P ` when the run has several passes."""
USER_ROWS = [(1, "real customer"), (2, "another one")]


def announce_seed() -> None:
    print(f"fault injection seed: SQLABENCH_FAULT_SEED={BASE_SEED}", file=sys.stderr)


@dataclass
class Trial:
    """One run with one fault, and everything the checks need to know about it."""

    tmp: Path
    seed: int
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    lines: list[tuple[float, str]] = field(default_factory=list)
    returncode: int | None = None
    moment: str = ""
    fault_at: float = 0.0

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def data_home(self) -> Path:
        return self.tmp / "data"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != POSTGRES_URL_ENV}
        env.update(XDG_DATA_HOME=str(self.data_home), SQLABENCH_FAULT_TRIAL=self.marker)
        return env

    def describe(self) -> str:
        tail = "".join(line for _, line in self.lines[-6:])
        return (
            f"seed {self.seed} (SQLABENCH_FAULT_SEED={BASE_SEED}), fault {self.moment}; "
            f"exit {self.returncode}; last output:\n{tail}"
        )

    def finished_names(self, since: float = 0.0) -> set[str]:
        """Benchmarks the run reported as done (its progress lines), an independent record."""
        names = set()
        for stamp, line in self.lines:
            parts = line.split()
            if stamp >= since and len(parts) >= 3 and PROGRESS.match(line) and " ok" in line:
                names.add(line.split("] ", 1)[1].split("  ", 1)[0])
        return names


def user_table(data_home: Path, create: bool = False) -> list[tuple[int, str]]:
    """The user's own table in the database the run uses (made first when `create`)."""
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(data_home)
    try:
        with embedded_server() as url:
            conninfo = make_url(url).render_as_string(hide_password=False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                if create:
                    conn.execute("CREATE TABLE public.users (id int primary key, name text)")
                    conn.cursor().executemany("INSERT INTO public.users VALUES (%s, %s)", USER_ROWS)
                return [tuple(r) for r in conn.execute("SELECT * FROM public.users ORDER BY id")]
    finally:
        if before is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = before


def processes_of(marker: str) -> list[str]:
    """Live processes started by the trial's run (they inherit its environment marker)."""
    found = []
    needle = f"SQLABENCH_FAULT_TRIAL={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except OSError:
            continue
        if "\nState:\tZ" not in status:
            found.append(f"{entry.name}: {cmdline}")
    return found


@contextlib.contextmanager
def running(trial: Trial, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start `sqlabench ARGS` for the trial, collecting its progress lines with their times."""
    trial.out.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlabench", *args, "--out", str(trial.out)],
        cwd=ROOT, env=trial.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            trial.lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    threading.Thread(target=lambda: process.stdout and process.stdout.read(), daemon=True).start()
    try:
        yield process
        trial.returncode = process.wait(timeout=600)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_line(trial: Trial, process: subprocess.Popen[str], contains: str) -> float:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for stamp, line in list(trial.lines):
            if contains in line:
                return stamp
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"no line with {contains!r}: " + trial.describe())


def at_random_moment(
    trial: Trial,
    process: subprocess.Popen[str],
    window: float,
    fault: Callable[[], None],
    after: str = "ok  median",
) -> None:
    """Wait for `after` (default: the first benchmark done), then a seeded delay, then fault."""
    delay = random.Random(trial.seed).uniform(0.0, window)
    trial.moment = f"{delay:.2f} s after the line with {after!r}"
    start = wait_for_line(trial, process, after)
    time.sleep(max(0.0, start + delay - time.monotonic()))
    if process.poll() is None:
        trial.fault_at = time.monotonic()
        fault()


def at_random_benchmark(
    trial: Trial, process: subprocess.Popen[str], fault: Callable[[], None], most: float = 1.5
) -> None:
    """A seeded moment anywhere in the run: after a random benchmark k of N, plus 0-1.5 s.

    Chosen by progress rather than by clock, so the moment falls inside the run however fast
    the machine is today (the last benchmark excluded: the fault must come before the end).
    """
    wait_for_line(trial, process, "ok  median")  # progress lines read "[  k/N] name  ok ..."
    progress = next(m for _, text in trial.lines if (m := PROGRESS.match(text)))
    total = int(progress.group(1))
    rng = random.Random(trial.seed)
    k, delay = rng.randrange(1, total), rng.uniform(0.0, most)
    trial.moment = f"{delay:.2f} s after benchmark {k} of {total}"
    start = wait_for_line(trial, process, f"{k:>{len(str(total))}}/{total}] ")
    time.sleep(max(0.0, start + delay - time.monotonic()))
    if process.poll() is None:
        trial.fault_at = time.monotonic()
        fault()


def loaded_result(trial: Trial) -> results.ResultFile:
    files = sorted(p.name for p in trial.out.iterdir())
    assert len(files) == 1 and files[0].endswith(".json"), f"{files}: " + trial.describe()
    return results.load(trial.out / files[0])


def check_nothing_lost(trial: Trial, result: results.ResultFile) -> None:
    """Every saved benchmark complete, and exactly those the run reported as done."""
    for bench in result.benchmarks:
        assert bench.data and bench.stats["rounds"] == len(bench.data), trial.describe()
        assert bench.extra_info.get("verified") is True, trial.describe()
    saved = {b.name for b in result.benchmarks}
    assert saved == trial.finished_names(), trial.describe()
    by_name = {b.name: b for b in result.benchmarks}
    for cut in result.info.interrupted:
        # cut short in the pass that was stopped: saved only with the passes it finished
        if cut["benchmark"] in by_name:
            passes = by_name[cut["benchmark"]].extra_info["passes"]
            assert passes < result.info.repeat, trial.describe()


def check_nothing_left(trial: Trial, before: list[tuple[int, str]]) -> None:
    deadline = time.monotonic() + 15
    while processes_of(trial.marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(trial.marker) == [], trial.describe()
    assert user_table(trial.data_home) == before, trial.describe()


def signal_trial(
    tmp: Path, seed: int, signum: int, window: float | None, storm: bool = False
) -> None:
    """A stop signal `window` s after the first benchmark, or anywhere in the run (None)."""
    trial = Trial(tmp, seed)
    before = user_table(trial.data_home, create=True)
    with running(trial, *RUN_ALL) as process:

        def fault() -> None:
            os.kill(process.pid, signum)
            if storm:  # more signals while it saves and stops its servers (fewer than five:
                # the fifth would end it at once, by design)
                for pause, other in ((0.05, signal.SIGTERM), (0.25, signal.SIGHUP), (0.7, signum)):
                    time.sleep(pause)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, other)

        if window is None:
            at_random_benchmark(trial, process, fault)
        else:
            at_random_moment(trial, process, window, fault)
    if not trial.fault_at:  # the run ended before the moment: nothing to check
        pytest.skip("the run finished before the fault: " + trial.describe())
    assert trial.returncode == 130, trial.describe()
    stderr = "".join(line for _, line in trial.lines)
    assert "Traceback" not in stderr, trial.describe()
    # it stops at once: the benchmark in progress is cut short (or just ends), no other starts
    assert len(trial.finished_names(since=trial.fault_at)) <= 1, trial.describe()
    assert trial.lines[-1][0] - trial.fault_at < 120, "slow to stop: " + trial.describe()
    result = loaded_result(trial)
    if result.info.complete:  # only when the signal came after the last benchmark
        assert trial.finished_names(since=trial.fault_at) == set(), trial.describe()
        assert "every benchmark had finished" in stderr, trial.describe()
    check_nothing_lost(trial, result)
    check_nothing_left(trial, before)


SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}


@pytest.mark.parametrize("moment", range(2))
@pytest.mark.parametrize("kind", list(SIGNALS))
def test_a_stop_signal_at_a_random_moment_keeps_every_finished_benchmark(
    tmp_path: Path, kind: str, moment: int
) -> None:
    announce_seed()
    signal_trial(tmp_path, BASE_SEED + 1000 * list(SIGNALS).index(kind) + moment, SIGNALS[kind],
                 FAST_WINDOW)  # fmt: skip


def test_a_second_signal_during_the_save_loses_nothing(tmp_path: Path) -> None:
    announce_seed()
    signal_trial(tmp_path, BASE_SEED + 5000, signal.SIGINT, FAST_WINDOW, storm=True)


@pytest.mark.slow
@pytest.mark.parametrize("moment", range(SLOW_MOMENTS))
@pytest.mark.parametrize("kind", [*SIGNALS, "storm"])
def test_stop_signals_across_whole_runs(tmp_path: Path, kind: str, moment: int) -> None:
    announce_seed()
    signum = SIGNALS.get(kind, signal.SIGINT)
    seed = BASE_SEED + 10_000 * (1 + [*SIGNALS, "storm"].index(kind)) + moment
    signal_trial(tmp_path, seed, signum, None, storm=kind == "storm")


def server_kill_trial(tmp: Path, seed: int) -> None:
    """The PostgreSQL server dies mid-run: its benchmarks fail, the others go on, exit 1."""
    trial = Trial(tmp, seed)
    before = user_table(trial.data_home, create=True)
    pgdata = next(trial.data_home.glob("sqlabench/pgdata-*"))
    with running(trial, "run", "engines", "loading", "--profile", "quick",
                 "-b", "sqlite", "-b", "psycopg") as process:  # fmt: skip

        def fault() -> None:
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # a crash: no shutdown, connections cut

        at_random_moment(trial, process, 4.0, fault, after="test_engines[psycopg-")
    assert trial.returncode == 1, trial.describe()
    result = loaded_result(trial)
    failed = {f["benchmark"] for f in result.info.failures}
    assert any("psycopg" in name for name in failed), trial.describe()
    assert not any("sqlite" in name for name in failed), trial.describe()
    assert any(n.startswith("test_loading[sqlite") for n in trial.finished_names(trial.fault_at))
    check_nothing_lost(trial, result)
    # the server is gone; restarting it checks the user's table
    check_nothing_left(trial, before)


def proxy_kill_trial(tmp: Path, seed: int) -> None:
    """The latency proxy dies mid-run: benchmarks through it fail at once, not hang."""
    trial = Trial(tmp, seed)
    before = user_table(trial.data_home, create=True)
    # one worker process: the kill lands while it runs its benchmarks through its proxy (with
    # several, a kill between two workers finds only the runner's idle one, and the next
    # worker starts its own)
    with running(trial, "run", "engines", "--profile", "quick", "-b", "psycopg",
                 "--rtt-ms", "1", "--repeat", "1") as process:  # fmt: skip

        def fault() -> None:
            for line in processes_of(trial.marker):
                if "sqlabench.latency" in line:
                    os.kill(int(line.split(":")[0]), signal.SIGKILL)

        # while a benchmark runs: a worker's quick benchmarks take a few tenths of a second
        at_random_benchmark(trial, process, fault, most=0.1)
    assert trial.fault_at, "the run ended before the fault: " + trial.describe()
    assert trial.returncode == 1, trial.describe()
    assert trial.lines[-1][0] - trial.fault_at < 120, "benchmarks hung on the dead proxy"
    result = loaded_result(trial)
    assert result.info.failures, trial.describe()
    check_nothing_lost(trial, result)
    check_nothing_left(trial, before)


def test_a_killed_server_fails_its_benchmarks_and_the_others_go_on(tmp_path: Path) -> None:
    announce_seed()
    server_kill_trial(tmp_path, BASE_SEED + 6000)


def test_a_killed_latency_proxy_fails_its_benchmarks_without_hanging(tmp_path: Path) -> None:
    announce_seed()
    proxy_kill_trial(tmp_path, BASE_SEED + 7000)


@pytest.mark.slow
@pytest.mark.parametrize("moment", range(SLOW_MOMENTS))
@pytest.mark.parametrize("kind", ["server", "proxy"])
def test_killed_servers_and_proxies_at_many_moments(tmp_path: Path, kind: str, moment: int) -> None:
    announce_seed()
    seed = BASE_SEED + (60_000 if kind == "server" else 70_000) + moment
    (server_kill_trial if kind == "server" else proxy_kill_trial)(tmp_path, seed)


def rescued_path(trial: Trial) -> Path:
    assert trial.fault_at, "the run ended before the fault: " + trial.describe()
    stderr = "".join(line for _, line in trial.lines).strip().splitlines()
    assert trial.returncode == 2, trial.describe()
    assert len(stderr) >= 1 and stderr[-1].startswith("sqlabench: error: cannot write"), stderr
    assert "the result was saved to " in stderr[-1], stderr[-1]
    path = Path(stderr[-1].split("the result was saved to ", 1)[1].split(" instead")[0])
    rescued = results.load(path)
    assert {b.name for b in rescued.benchmarks} == trial.finished_names(), trial.describe()
    path.unlink()
    return path


SAVE_FAULT_RUN = ("run", "engines", "--profile", "quick", "-b", "sqlite", "-b", "aiosqlite")
"""A run of about 8 s here: a fault 0-0.5 s after its first benchmark lands well before its save."""


def test_a_results_directory_that_went_away_keeps_the_result_elsewhere(tmp_path: Path) -> None:
    announce_seed()
    trial = Trial(tmp_path, BASE_SEED + 8000)
    with running(trial, *SAVE_FAULT_RUN) as process:

        def fault() -> None:
            shutil.rmtree(trial.out)  # nothing is written there before the save
            trial.out.write_text("a file where the results directory was\n")

        at_random_moment(trial, process, 0.5, fault)
    rescued_path(trial)
    assert trial.out.read_text() == "a file where the results directory was\n"
    assert processes_of(trial.marker) == []


def test_a_full_disk_at_save_time_keeps_the_result_elsewhere(tmp_path: Path) -> None:
    announce_seed()
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr!r}")
    try:
        trial = Trial(small, BASE_SEED + 9000)
        trial.out.mkdir()
        filler = small / "filler"
        with running(trial, *SAVE_FAULT_RUN) as process:

            def fault() -> None:  # fill the disk up, leaving less than a result needs
                with contextlib.suppress(OSError), filler.open("wb") as fh:
                    while True:
                        fh.write(b"\0" * 1024)
                        fh.flush()

            at_random_moment(trial, process, 0.5, fault)
        rescued_path(trial)
        assert [p.name for p in trial.out.iterdir() if not p.name.startswith(".write")] == []
        assert [p.name for p in trial.out.iterdir()] == [], "a half-written file was left"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
