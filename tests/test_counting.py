"""The counting pass: Python calls and instructions per operation, deterministic by design."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import run_cli
from sqlabench import counting, measure, results
from sqlabench.measure import StatementCounter
from test_results import make_result


class CountingBenchmark:
    """What the counting pass sees of pytest-benchmark's fixture: a name and extra_info."""

    def __init__(self, name: str = "test_x[case]") -> None:
        self.name = name
        self.extra_info: dict[str, Any] = {}

    def __call__(self, target: Any) -> None:  # pragma: no cover - never timed when counting
        raise AssertionError("the counting pass must not time")


@pytest.fixture
def counting_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(counting.COUNTING_ENV, str(tmp_path))
    return tmp_path


def calls_of(body: Any) -> int:
    """Python calls of `body()`, counted independently of the probe (a second profiler)."""
    seen = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal seen
        seen += event in ("call", "c_call")

    sys.setprofile(profile)
    try:
        body()
    finally:
        sys.setprofile(None)
    return seen - 1  # the call of sys.setprofile(None) itself


def test_python_calls_are_counted_around_the_operation_only(counting_dir: Path) -> None:
    def leaf() -> int:
        return 1

    def op() -> int:
        return leaf() + leaf() + len("abc")

    expected = calls_of(op)
    assert expected == 4  # op, leaf twice, len: the probe must find the same
    bench = CountingBenchmark()
    counter = StatementCounter()
    outcome = measure.measure(bench, op, counter)
    assert bench.extra_info["py_calls"] == expected
    # warm-up and counted calls all ran the operation, and its results were kept
    assert outcome.calls == counting.PY_CALLS_WARMUP + counting.PY_CALLS_COUNTED
    assert outcome.results[-1] == 5


def test_python_calls_of_an_async_operation_include_its_greenlet_half(
    counting_dir: Path, tmp_path: Path
) -> None:
    """SQLAlchemy's async layer runs the sync half of an operation in a greenlet: the count
    must include it (an async Core query is more calls than the sync one, never fewer)."""
    pytest.importorskip("aiosqlite")
    sync_engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    bench = CountingBenchmark()
    with sync_engine.connect() as conn:
        measure.measure(bench, lambda: conn.execute(text("SELECT 1")).scalar_one(),
                        StatementCounter())  # fmt: skip
    sync_calls = bench.extra_info["py_calls"]

    async def run_async() -> float:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        async_bench = CountingBenchmark()
        async with engine.connect() as conn:

            async def op() -> Any:
                return (await conn.execute(text("SELECT 1"))).scalar_one()

            await measure.measure_async(async_bench, op, StatementCounter())
        await engine.dispose()
        return float(async_bench.extra_info["py_calls"])

    async_calls = asyncio.run(run_async())
    assert sync_calls > 50 and async_calls > sync_calls


def test_injected_work_adds_the_same_calls_to_every_operation(
    counting_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calibration's CPU work is inside the counted call: sum and range, once per call."""
    bench = CountingBenchmark("test_x[work]")
    measure.measure(bench, lambda: 1, StatementCounter())
    plain = bench.extra_info["py_calls"]
    base = tmp_path / "base.json"
    data = make_result()
    data["benchmarks"][0].update(name="test_x[work]", extra_info={"instructions": 178_000})
    base.write_text(json.dumps(data))
    monkeypatch.setenv(measure.WORK_ENV, "0.10")
    monkeypatch.setenv(measure.WORK_OF_ENV, str(base))
    # a tenth of 178,000 instructions, at about 200 per iteration of sum(range())
    assert 70 <= measure.injected_work("test_x[work]") <= 90
    assert measure.injected_work("test_x[other]") == 0
    worked = CountingBenchmark("test_x[work]")
    measure.measure(worked, lambda: 1, StatementCounter())
    assert worked.extra_info["py_calls"] == plain + 2


def test_dumps_are_read_per_benchmark_and_per_call(tmp_path: Path) -> None:
    """callgrind's dump format, as valgrind 3.19 writes it (one file per client request),
    less the type-cache misses: `find_name_in_mro`'s own cost and its calls' inclusive cost,
    in every block of it (inlined parts from other files included), nothing else."""
    (tmp_path / "callgrind.out.1").write_text(
        "# callgrind format\nversion: 1\n"
        "desc: Trigger: Client Request: sqlabench:5:test_engines[psycopg-core-pk_lookup]\n"
        "\npositions: line\nevents: Ir\nsummary: 3000000\n\n"
        "ob=/lib/libpython3.11.so\nfl=Objects/typeobject.c\nfn=_PyType_Lookup\n"
        "4100 70\ncfn=find_name_in_mro\ncalls=3 4000\n4105 900\n"
        "fn=find_name_in_mro\n4000 400\nfi=Include/object.h\n120 50\n"
        "fe=Objects/typeobject.c\ncfl=Objects/dictobject.c\ncfn=_Py_dict_lookup\n"
        "calls=6 1500\n4010 450\ncfn=find_name_in_mro'2\ncalls=1 4000\n4011 100\n"
        "fn=find_name_in_mro'2\n4000 100\n"
        "fn=other\n10 2999000\n"
        "totals: 3000000\n"
    )
    (tmp_path / "callgrind.out.2").write_text(
        "desc: Trigger: Client Request: sqlabench:2:test_bulk[x-1000]\nsummary: 1000\n"
    )
    (tmp_path / "callgrind.out").write_text("desc: Trigger: Program termination\ntotals: 0\n")
    assert counting.read_dumps(tmp_path) == {
        # 400 + 50 + 450 + 100: its own, an inlined part, a call, a recursion (counted once)
        "test_engines[psycopg-core-pk_lookup]": (3_000_000 - 1_000) / 5,
        "test_bulk[x-1000]": 500.0,
    }


needs_valgrind = pytest.mark.skipif(
    not counting.counting_tool().instructions,
    reason=counting.counting_tool().description,
)


SLOWER_EXECUTE = """
# CPU work inside psycopg's Cursor.execute: ~50k instructions, ~10% of a Core lookup
import psycopg

_execute = psycopg.Cursor.execute


def execute(self, *args, **kwargs):
    sum(range(300))
    return _execute(self, *args, **kwargs)


psycopg.Cursor.execute = execute
"""


@needs_valgrind
def test_cpu_work_added_inside_the_driver_fails_the_gate_and_same_code_passes(
    tmp_path: Path,
) -> None:
    """The acceptance check: two counted runs of the same code compare with exit 0; with
    `sum(range(300))` added inside psycopg's Cursor.execute (about 1% of the lookup's wall
    time, far inside this machine's noise), compare exits 1 naming the core and raw
    primary-key lookups by their instructions."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOWER_EXECUTE)

    def run(out: str, env: dict[str, str] | None = None) -> Path:
        done = run_cli(
            "run", "engines", "--profile", "smoke", "-b", "psycopg", "-k", "pk_lookup",
            "--instructions", "--out", str(tmp_path / out), env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "counting pass: callgrind" in done.stderr
        [path] = (tmp_path / out).glob("*.json")
        return path

    first, second = run("a"), run("b")
    slower = run("c", {"PYTHONPATH": str(site)})
    counted = results.load(first).benchmarks
    assert len(counted) == 3 and all(b.extra_info.get("instructions") for b in counted)
    same = run_cli("compare", str(first), str(second))
    assert same.returncode == 0, same.stdout
    worse = run_cli("compare", str(first), str(slower))
    assert worse.returncode == 1, worse.stdout
    named = {
        line.split(": ")[1] for line in worse.stdout.splitlines() if line.startswith("regression: ")
    }
    assert {"test_engines[psycopg-core-pk_lookup]", "test_engines[psycopg-raw-pk_lookup]"} <= named
    assert "instructions" in worse.stdout


@needs_valgrind
def test_a_killed_run_takes_its_counting_process_with_it(tmp_path: Path) -> None:
    """SIGKILL gives the run no chance to stop its children: the counting process (its own
    session, so a terminal's Ctrl-C does not reach it) must still not outlive it, re-seeding
    tables after the run's lock is gone."""
    import signal
    import time
    import uuid

    from test_faults import processes_of

    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "SQLABENCH_POSTGRES_URL"}
    env.update(SQLABENCH_FAULT_TRIAL=marker, XDG_DATA_HOME=str(tmp_path / "data"))
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlabench", "run", "engines", "loading", "--profile", "smoke",
         "-b", "sqlite", "-b", "aiosqlite", "--instructions", "--out", str(tmp_path / "out")],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("counting py_calls ["):
            break
    else:
        pytest.fail(f"no counting pass (exit {process.wait()})")
    time.sleep(0.5)
    assert any("pytest" in p for p in processes_of(marker))  # the counting child runs
    process.send_signal(signal.SIGKILL)
    process.wait()
    # at once: left alone, this counting process would run for many seconds more
    deadline = time.monotonic() + 2
    while processes_of(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(marker) == []
