"""The CLI as users meet it: help, listing, and bad input answered in one line with exit 2."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from conftest import run_cli


def assert_one_line_error(done, contains: str) -> None:  # type: ignore[no-untyped-def]
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert contains in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_help_and_list() -> None:
    done = run_cli("--help")
    assert done.returncode == 0 and "run" in done.stdout and "list" in done.stdout
    done = run_cli("run", "--help")
    assert done.returncode == 0 and "--profile" in done.stdout and "--postgres" in done.stdout
    done = run_cli("list")
    assert done.returncode == 0
    for name in ("engines", "sqlite", "aiosqlite", "psycopg", "psycopg_async", "asyncpg", "quick"):
        assert name in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nosuchquestion"], "unknown question 'nosuchquestion'"),
        (["run"], "name a question"),
        (["run", "engines", "--backend", "oracle"], "unknown backend 'oracle'"),
        (["run", "engines", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "engines", "-b", "psycopg", "--postgres", "nonsense"], "not a database URL"),
        (
            ["run", "engines", "-b", "psycopg", "--postgres", "mysql://r@h/d"],
            "not a PostgreSQL URL",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = run_cli(*args, "--out", str(tmp_path)) if len(args) > 1 else run_cli(*args)
    assert_one_line_error(done, message)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_masks_the_password(tmp_path: Path) -> None:
    done = run_cli(
        "run", "engines", "-b", "psycopg", "--out", str(tmp_path),
        "--postgres", "postgresql://bob:hunter2@127.0.0.1:1/db",
    )  # fmt: skip
    assert_one_line_error(done, "cannot connect to PostgreSQL")
    assert "hunter2" not in done.stderr + done.stdout
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = run_cli("run", "engines", "-b", "sqlite", "--out", str(blocker / "runs"))
    assert_one_line_error(done, "cannot write results")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "No such option '--bogus'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["run", "engines", "--profile"], "requires an argument"),
        (["run", "engines", "-b", "sqlite", "-k", "and ("], "invalid -k expression"),
        (["run", "engines", "-b", "sqlite", "-k", "nothingmatches"], "no benchmark matches -k"),
        (
            ["run", "engines", "-b", "psycopg", "--postgres", "postgresql://u@h:abc/d"],
            "not a database URL",
        ),
    ],
)
def test_usage_errors_are_one_line_too(args: list[str], message: str, tmp_path: Path) -> None:
    if args[0] == "run":
        done = run_cli("run", "--out", str(tmp_path / "new"), *args[1:])
    else:
        done = run_cli(*args)
    assert_one_line_error(done, message)
    assert not (tmp_path / "new").exists()


def test_bare_command_shows_help() -> None:
    done = run_cli()
    assert done.returncode == 0 and "Usage: sqlabench" in done.stdout


BROKEN_SCENARIO = '''
"""Does a run whose every benchmark fails still leave a result?"""
import pytest

@pytest.mark.parametrize("n", [1, 2])
def test_broken(benchmark, sqlabench_run, n):
    raise RuntimeError(f"broken before timing {n}")
'''


def test_a_run_where_every_benchmark_fails_is_still_recorded(tmp_path: Path) -> None:

    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "test_broken.py").write_text(BROKEN_SCENARIO)
    out = tmp_path / "out"
    done = run_cli(
        "run", str(bench_dir / "test_broken.py"), "-b", "sqlite", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [path] = out.glob("*.json")
    data = json.loads(path.read_text())
    assert data["benchmarks"] == []
    assert data["sqlabench"]["complete"] is False
    errors = [f["error"] for f in data["sqlabench"]["failures"]]
    assert len(errors) == 2 and all("broken before timing" in e for e in errors)


FAILS_AFTER_TIMING = '''
"""Is a benchmark that timed all its rounds and then failed its check saved?"""
import pytest

@pytest.mark.parametrize("ok", [True, False])
def test_checked(benchmark, sqlabench_run, ok):
    benchmark.extra_info["verified"] = False
    benchmark.pedantic(lambda: None, rounds=3, iterations=1)
    if not ok:
        raise AssertionError("did less than asked")
    benchmark.extra_info["verified"] = True
'''


def test_a_benchmark_failing_after_its_rounds_is_left_out_of_the_result(tmp_path: Path) -> None:
    """Its rounds are complete but the work was not done: a number the gate must never see."""
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "test_checked.py").write_text(FAILS_AFTER_TIMING)
    out = tmp_path / "out"
    done = run_cli(
        "run", str(bench_dir / "test_checked.py"), "-b", "sqlite", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    [path] = out.glob("*.json")
    data = json.loads(path.read_text())
    assert [b["name"] for b in data["benchmarks"]] == ["test_checked[True]"]
    assert [f["benchmark"] for f in data["sqlabench"]["failures"]] == ["test_checked[False]"]
    assert data["sqlabench"]["interrupted"] == []


WHO_MEASURES = '''"""Which process measures?"""
import os
from pathlib import Path

QUESTION = "who"
PROFILES = {"smoke": 1, "quick": 1, "full": 1}


def test_who(benchmark, sqlabench_run):
    benchmark(lambda: None)
    with open(Path(__file__).with_suffix(".log"), "a") as log:
        log.write(f"{os.getpid()} {hash('sqlabench')}\\n")
    benchmark.extra_info.update(question=QUESTION, backend="sqlite", mode="sync", verified=True)
'''


def test_each_pass_is_measured_in_a_fresh_process_with_its_own_hash_seed(
    tmp_path: Path,
) -> None:
    """Process-to-process noise (hash order, memory layout) is what moves numbers here: a
    pass in the runner's own process, or in processes sharing a hash seed, cannot sample it."""
    module = tmp_path / "who.py"
    module.write_text(WHO_MEASURES)
    done = run_cli(
        "run", str(module), "-b", "sqlite", "--repeat", "3", "--out", str(tmp_path / "out"),
        "--profile", "smoke",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = [line.split() for line in (tmp_path / "who.log").read_text().splitlines()]
    assert len(seen) == 3
    pids, hashes = {pid for pid, _ in seen}, {h for _, h in seen}
    assert len(pids) == 3 and len(hashes) == 3, seen
    [path] = (tmp_path / "out").glob("*.json")
    [bench] = json.loads(path.read_text())["benchmarks"]
    headline = bench["extra_info"]["time"]
    assert headline["processes"] == 3 and len(bench["extra_info"]["pass_medians"]) == 3
    assert headline["median"] == statistics.median(bench["extra_info"]["pass_medians"])


SEEDS_ONCE = '''"""How often is the database seeded?"""
from pathlib import Path

QUESTION = "seeds"
PROFILES = {"smoke": 1, "quick": 1, "full": 1}


def seed(target):
    with open(Path(__file__).with_suffix(".log"), "a") as log:
        log.write(f"seeded {target.family.name}\\n")


def test_seeds(benchmark, sqlabench_run):
    [backend] = sqlabench_run.backends
    sqlabench_run.seeded(backend, "seeds:1", seed)
    benchmark(lambda: None)
    benchmark.extra_info.update(question=QUESTION, backend=backend.name, mode="sync", verified=True)
'''


def test_the_database_is_seeded_once_per_run_not_once_per_worker(tmp_path: Path) -> None:
    """Seeding in every worker rewrote the tables (and their WAL, statistics, vacuum work)
    under the benchmarks of the next one; the run seeds each database once."""
    module = tmp_path / "seeds.py"
    module.write_text(SEEDS_ONCE)
    done = run_cli(
        "run", str(module), "-b", "sqlite", "--repeat", "3", "--out", str(tmp_path / "out"),
        "--profile", "smoke",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "seeds.log").read_text().splitlines() == ["seeded sqlite"]


def test_repeat_runs_passes_and_joins_their_rounds(tmp_path: Path) -> None:
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "sqlite", "-k", "raw and pk_lookup",
        "--repeat", "2", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pass 2/2 [1/1] test_engines[sqlite-raw-pk_lookup]  ok" in done.stderr
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert data["sqlabench"]["repeat"] == 2 and data["sqlabench"]["complete"] is True
    [bench] = data["benchmarks"]
    assert bench["extra_info"]["passes"] == 2 and bench["extra_info"]["verified"] is True
    assert bench["stats"]["rounds"] == len(bench["stats"]["data"]) >= 6
    bad = run_cli("run", "engines", "-b", "sqlite", "--repeat", "0", "--out", str(tmp_path / "x"))
    assert_one_line_error(bad, "--repeat must be from 1 to 100, not 0")


def test_a_worker_that_crashes_is_a_failure_of_the_run_not_a_quiet_success(
    tmp_path: Path,
) -> None:
    """Only one-line errors were caught in the worker: any other exception left an empty
    status, which the runner took as a pass that went well (exit 0, nothing measured)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "if 'sqlabench.worker' in getattr(sys, 'orig_argv', []):\n"
        "    import sqlabench.runner\n"
        "    def start(*args, **kwargs):\n"
        "        raise RuntimeError('boom')\n"
        "    sqlabench.runner.start = start\n"
    )
    done = run_cli(
        "run", "engines", "-b", "sqlite", "--profile", "smoke", "--out", str(tmp_path / "out"),
        env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    [path] = (tmp_path / "out").glob("*.json")
    failures = json.loads(path.read_text())["sqlabench"]["failures"]
    assert any("crashed: RuntimeError: boom" in f["error"] for f in failures), failures
