"""The counting pass: deterministic costs per operation, for a gate the machine's noise cannot move.

Wall time on a shared 2-core VM moves 10-25% between processes; what an operation *does* does
not. After the timed passes, `sqlabench run --instructions` runs the same benchmarks again in
two counting processes, one after the other, which time nothing. Each runs a benchmark's operation a
few times to warm up, then counts a few calls, around exactly the calls a timed round
surrounds:

- `py_calls` (a plain Python process, every benchmark): Python-level function calls, and
  calls of C functions from Python, counted with `sys.setprofile` as SQLAlchemy's own
  test/aaa_profiling counts them. Needs nothing else; exactly reproducible.
- `instructions` (a process under valgrind's callgrind, every benchmark whose operation takes
  at most `INSTRUCTIONS_CAP_S` in the timed pass): user-space instructions of the client
  process, with collection switched on only around the operation (client requests from the
  `_callgrind` extension), address-space randomisation off and a fixed hash seed. Network I/O
  and the event loop are included; the server's work is not (another process). Under
  callgrind Python runs about 50 times slower, which is why long operations are left to
  `py_calls` (their shorter siblings, e.g. a 1,000-row bulk insert beside the 10,000-row one,
  are counted).

The pools question is not counted: its operation is many client threads contending for a
pool, so what each does depends on scheduling. Statements and rows per operation are
recorded by every pass, timed or not.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COUNTING_ENV = "SQLABENCH_COUNTING"
"""Set (to the process's output directory) only in a counting process."""
PROBE_ENV = "SQLABENCH_COUNT_PROBE"
"""What a counting process counts: `py_calls` or `instructions`."""

PY_CALLS_WARMUP = 6
"""Uncounted calls first: past psycopg's prepare threshold (5) and SQLAlchemy's caches."""
PY_CALLS_COUNTED = 2
INSTRUCTIONS_WARMUP = 6
INSTRUCTIONS_COUNTED = 3
ROUNDS_WARMUP = 1
ROUNDS_COUNTED = 1
"""For operations that need a fresh setup per call (bulk inserts): one of each, they are long."""
INSTRUCTIONS_CAP_S = 0.020
"""Operations slower than this in the timed pass get no instruction count (see above): at
20 ms the callgrind process of the whole quick profile takes minutes, not hours."""
NOT_COUNTED = frozenset({"pools"})
"""Questions whose operations are not deterministic enough to count (see above)."""

DUMP_PREFIX = "sqlabench:"
_DUMP_FILE = "callgrind.out"


def counting_dir() -> Path | None:
    """The counting pass's output directory, when this process is a counting process."""
    value = os.environ.get(COUNTING_ENV)
    return Path(value) if value else None


def probe_kind() -> str:
    """What this counting process counts (py_calls unless told instructions)."""
    return "instructions" if os.environ.get(PROBE_ENV) == "instructions" else "py_calls"


def _callgrind() -> Any | None:
    """The client-request module, when this process runs under valgrind; else None."""
    try:
        from sqlabench import _callgrind  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _callgrind if _callgrind.running_on_valgrind() else None


class Probe:
    """What the counting wrapper does around each call: nothing, count calls, or collect."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.mode = "off"
        self.calls = 0
        self._callgrind = _callgrind() if kind == "instructions" else None

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call" or event == "c_call":
            self.calls += 1

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        """Wrap exactly one call of the operation (the code a timed round surrounds)."""
        mode = self.mode
        if mode == "py_calls":
            # setprofile is per thread and follows greenlet switches within it: SQLAlchemy's
            # async layer runs the operation's sync half in a greenlet of this thread
            sys.setprofile(self._profile)
            try:
                yield
            finally:
                sys.setprofile(None)
        elif mode == "instructions":
            assert self._callgrind is not None
            self._callgrind.toggle_collect()
            try:
                yield
            finally:
                self._callgrind.toggle_collect()
        else:
            yield

    def count(
        self, name: str, call: Callable[[], None], setup: Callable[[], None] | None
    ) -> dict[str, float]:
        """Warm up, then count a few calls; the count per call of `name` (py_calls), or {}.

        `call` must enter `around()` itself, around the operation only (an async operation
        enters it inside the event loop). Instructions are written by callgrind to a dump
        headed by `name`; `read_dumps` reads them back in the parent process.
        """

        def calls(n: int) -> None:
            for _ in range(n):
                if setup is not None:
                    setup()
                call()

        def counted_calls(n: int) -> None:
            # the cyclic collector runs when allocations since the last run pass a threshold:
            # I/O timing shifts that point by a few allocations, and a collection that falls
            # inside or outside the window moved the ORM's count by 6% between processes
            was_enabled = gc.isenabled()
            gc.collect()
            gc.disable()
            try:
                calls(n)
            finally:
                if was_enabled:
                    gc.enable()

        rounds = setup is not None
        if self.kind == "py_calls":
            calls(ROUNDS_WARMUP if rounds else PY_CALLS_WARMUP)
            counted = ROUNDS_COUNTED if rounds else PY_CALLS_COUNTED
            self.mode, self.calls = "py_calls", 0
            try:
                with self.around():  # the probe's own calls, taken off each counted call
                    pass
                overhead, self.calls = self.calls, 0
                counted_calls(counted)
            finally:
                self.mode = "off"
            return {"py_calls": per_call(self.calls - overhead * counted, counted)}
        calls(ROUNDS_WARMUP if rounds else INSTRUCTIONS_WARMUP)
        if self._callgrind is None:
            return {}
        counted = ROUNDS_COUNTED if rounds else INSTRUCTIONS_COUNTED
        grind = self._callgrind
        grind.start_instrumentation()
        grind.zero_stats()
        self.mode = "instructions"
        try:
            counted_calls(counted)
        finally:
            self.mode = "off"
            grind.dump_stats_at(f"{DUMP_PREFIX}{counted}:{name}")
            grind.stop_instrumentation()
        return {}


def per_call(total: int, calls: int) -> float:
    return total / calls


_TRIGGER = re.compile(r"^desc: Trigger: Client Request: " + re.escape(DUMP_PREFIX) + r"(\d+):(.*)$")
_TOTAL = re.compile(r"^(?:summary|totals): (\d+)")

LAYOUT_DEPENDENT = frozenset({"find_name_in_mro"})
"""CPython functions whose instructions depend on where objects landed in memory, not on the
code: `find_name_in_mro` runs on a miss of the type attribute cache, which is indexed by the
address of the attribute's name. Two processes of the same code differed by up to 7% in a
Core lookup's instructions, all of it here (measured: 0.08% once these are left out)."""


def read_dumps(directory: Path) -> dict[str, float]:
    """Instructions per operation by benchmark name, from the callgrind dumps in `directory`,
    less what the `LAYOUT_DEPENDENT` functions cost (their callees included)."""
    found: dict[str, float] = {}
    for path in sorted(directory.glob(_DUMP_FILE + "*")):
        name, total, excluded, counted = _read_dump(path)
        if name is not None and total is not None:
            found[name] = (total - excluded) / counted
    return found


def _read_dump(path: Path) -> tuple[str | None, int | None, int, int]:
    """One dump: its benchmark, total, cost of the layout-dependent functions, calls counted.

    In callgrind's format (uncompressed names and positions, one event: Ir) a function's
    block starts at `fn=NAME`; each cost line is `POSITION COST`, its own cost, except the
    line after `calls=`, which is the inclusive cost of that call.
    """
    name = total = None
    counted, excluded = 1, 0
    inside = False
    with path.open(errors="replace") as lines:
        for line in lines:
            if line.startswith("fn="):
                # a recursion level (NAME'2) is inside the first level's call lines already;
                # an optimised build may name a clone NAME.isra.0 or NAME.lto_priv.0
                function = line[3:].strip()
                inside = "'" not in function and function.split(".")[0] in LAYOUT_DEPENDENT
            elif inside and line[:1].isdigit():
                excluded += int(line.split()[-1])
            elif (m := _TRIGGER.match(line.rstrip("\n"))) is not None:
                counted, name = int(m.group(1)), m.group(2)
            elif (t := _TOTAL.match(line)) is not None:
                total = int(t.group(1))
    return name, total, excluded, counted


@dataclass(frozen=True)
class CountingTool:
    """How this machine counts: callgrind (with its version) or Python calls only, and why."""

    instructions: bool
    description: str
    command: tuple[str, ...]


def counting_tool() -> CountingTool:
    """valgrind's callgrind with ASLR off where available; otherwise py_calls only, with why."""
    valgrind = shutil.which("valgrind")
    try:
        from sqlabench import _callgrind  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return CountingTool(
            False,
            "Python calls only: sqlabench's _callgrind extension was not built "
            "(no C compiler when sqlabench was installed)",
            (),
        )
    if valgrind is None:
        return CountingTool(
            False,
            "Python calls only: valgrind is not installed (Debian/Ubuntu: apt install valgrind)",
            (),
        )
    version = subprocess.run(
        [valgrind, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    command = [
        valgrind, "--tool=callgrind", "--quiet", "--instr-atstart=no", "--collect-atstart=no",
        "--compress-strings=no", "--compress-pos=no",
    ]  # fmt: skip
    setarch = shutil.which("setarch")
    aslr = "ASLR on"
    if setarch is not None and platform.system() == "Linux":
        probe = subprocess.run([setarch, platform.machine(), "-R", "true"], capture_output=True)
        if probe.returncode == 0:
            command = [setarch, platform.machine(), "-R", *command]
            aslr = "ASLR off"
    return CountingTool(True, f"callgrind ({version}, {aslr}, PYTHONHASHSEED=0)", tuple(command))


def run_counting_pass(
    pytest_args: list[str],
    out: Path,
    env: dict[str, str],
    tool: CountingTool,
    timeout: float,
    without_instructions: list[str],
) -> tuple[dict[str, dict[str, float]], str | None]:
    """Run the counting processes one after the other; counts per benchmark, and an error.

    One after the other: each seeds the tables it needs, and two at once on one database
    would re-seed under each other.

    `pytest_args` select the same benchmarks as the timed passes, in the plugin's standalone
    mode; `without_instructions` are the node ids the callgrind process leaves out (too long
    to run under it); `env` carries what the children must not see on their command line (a
    server password). A stop signal (KeyboardInterrupt) kills both and is raised again.
    """
    base_env = {**os.environ, **env, "PYTHONHASHSEED": "0"}
    plans = [("py_calls", [sys.executable, "-m", "pytest", *pytest_args])]
    if tool.instructions:
        dump = f"--callgrind-out-file={out / 'instructions' / _DUMP_FILE}"
        deselect = [f"--deselect={node}" for node in without_instructions]
        plans.append(("instructions", [*tool.command, dump, sys.executable, "-m", "pytest",
                                       *pytest_args, *deselect]))  # fmt: skip
    errors: list[str] = []
    for probe, command in plans:
        directory = out / probe
        directory.mkdir(parents=True, exist_ok=True)
        report = directory / "pytest.out"
        process: subprocess.Popen[bytes] | None = None
        try:
            with report.open("wb") as sink:
                # progress lines (stderr) reach the user as they come; pytest's report is kept.
                # Its own session (a terminal's Ctrl-C reaches the run, which stops it), and
                # killed with the run if the run itself is killed (Linux: parent-death signal)
                process = subprocess.Popen(
                    command, stdout=sink, start_new_session=True, preexec_fn=_die_with_parent,
                    env={**base_env, COUNTING_ENV: str(directory), PROBE_ENV: probe},
                )  # fmt: skip
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            errors.append(f"{probe}: took longer than {timeout:.0f} s and was stopped")
            continue
        finally:
            if process is not None and process.poll() is None:  # a timeout or a stop signal
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # valgrind and what it runs
                process.wait()
        # 5: nothing to count (every selected benchmark over the instruction cap)
        if code not in (0, 1, 5):
            errors.append(f"{probe}: {_last_line(report.read_text(errors='replace'))}")
    counts = read_counts(out / "py_calls")
    if tool.instructions:
        passed = read_counts(out / "instructions")
        for name, instructions in read_dumps(out / "instructions").items():
            if name in passed and name in counts:
                counts[name]["instructions"] = instructions
    return counts, "; ".join(errors) or None


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux prctl; elsewhere none)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the counting process failed"


COUNTS_FILE = "counts.jsonl"


def record(directory: Path, name: str, counts: dict[str, Any]) -> None:
    """Append one verified benchmark's counts (the plugin calls this after it passed)."""
    with (directory / COUNTS_FILE).open("a") as f:
        f.write(json.dumps({"name": name, **counts}) + "\n")


def read_counts(directory: Path) -> dict[str, dict[str, float]]:
    counts: dict[str, dict[str, float]] = {}
    path = directory / COUNTS_FILE
    if path.exists():
        for line in path.read_text().splitlines():
            item = json.loads(line)
            counts[item.pop("name")] = item
    return counts
