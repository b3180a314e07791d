"""pyperf and sqlabench on the same two operations, for the precision comparison in README.

The anchor of the precision targets (issue #15): pyperf's worker processes measure a raw and a
Core psycopg primary-key lookup; sqlabench measures the same two benchmarks of its engines
question. Run both tools `--runs` times, interleaved, on the same server and data, and report
for each tool the seconds it spent per benchmark and how far apart its runs' medians are
(the A/A difference: the median over benchmarks and pairs of runs of |b/a - 1|).

pyperf is not a dependency of sqlabench: install it where this script can import it, e.g.

    .venv/bin/python -m pip install --target /tmp/pyperf-lib pyperf
    PYTHONPATH=/tmp/pyperf-lib SQLABENCH_POSTGRES_URL=postgresql://... \\
        .venv/bin/python scripts/pyperf_side_by_side.py --runs 3 --out /tmp/side-by-side

The operations are the engines question's own (its layers, plan and data), on one held
connection, as the question times them; pyperf's `--fast` mode (its shortest) is used, and
sqlabench is given `--repeat` worker processes so that both spend about the same time per
benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlabench.backends import POSTGRES_URL_ENV
from sqlabench.families import driver
from sqlabench.measure import StatementCounter
from sqlabench.plugin import RUN_DIR_ENV, RunContext
from sqlabench.questions import engines

LAYERS = ("raw", "core")
ROOT = Path(__file__).resolve().parents[1]


def worker_main() -> None:
    """pyperf's side: one Runner, a benchmark per layer (pyperf re-runs this in its workers)."""
    import pyperf

    def keep_worker_flag(cmd: list[str], args: Any) -> None:
        cmd.append("--pyperf-worker")  # pyperf's workers run this file again: as workers

    runner = pyperf.Runner(add_cmdline_args=keep_worker_flag)
    runner.argparser.add_argument("--pyperf-worker", action="store_true")
    backend = driver("psycopg")
    size = engines.PROFILES["quick"].data
    context = RunContext([backend], "quick", {"postgresql": os.environ[POSTGRES_URL_ENV]})
    with contextlib.ExitStack() as stack:
        stack.callback(context.close)
        target = context.seeded(backend, f"engines:{size}", engines.seed_engines(size))
        for layer in LAYERS:
            case = engines.Case(backend, layer, "pk_lookup")
            operation = engines.Plan(case, size).operation(
                engines.make_sync_layer(case, target, StatementCounter(), stack)
            )
            runner.bench_func(f"test_engines[psycopg-{layer}-pk_lookup]", operation)


def pyperf_run(out: Path) -> tuple[dict[str, float], float]:
    """One pyperf --fast run of both benchmarks: medians (s) and seconds spent."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, __file__, "--pyperf-worker", "--fast", "--quiet", "-o", str(out),
         f"--inherit-environ={POSTGRES_URL_ENV},{RUN_DIR_ENV},PYTHONPATH,XDG_DATA_HOME"],
        check=True,
    )  # fmt: skip
    took = time.monotonic() - started
    data = json.loads(out.read_text())
    medians = {}
    for bench in data["benchmarks"]:
        values = [v for run in bench["runs"] for v in run.get("values", [])]
        medians[bench["metadata"]["name"]] = statistics.median(values)
    return medians, took


def sqlabench_run(out: Path, repeat: int) -> tuple[dict[str, float], float]:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "sqlabench", "run", "engines", "-b", "psycopg", "--profile",
         "quick", "-k", "pk_lookup and (raw or core)", "--repeat", str(repeat),
         "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    took = time.monotonic() - started
    [path] = sorted(out.glob("*.json"))[-1:]
    data = json.loads(path.read_text())
    return {b["name"]: b["extra_info"]["time"]["median"] for b in data["benchmarks"]}, took


def aa(runs: list[dict[str, float]]) -> list[float]:
    return [abs(b[n] / a[n] - 1) for a, b in itertools.combinations(runs, 2) for n in a]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=12, help="sqlabench worker processes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not os.environ.get(POSTGRES_URL_ENV):
        sys.exit(f"set {POSTGRES_URL_ENV} to the server both tools measure")
    args.out.mkdir(parents=True, exist_ok=True)
    shared = args.out / "shared"
    shared.mkdir(exist_ok=True)
    os.environ[RUN_DIR_ENV] = str(shared)  # pyperf's workers seed once, as sqlabench's do
    found: dict[str, list[dict[str, float]]] = {"pyperf": [], "sqlabench": []}
    spent: dict[str, list[float]] = {"pyperf": [], "sqlabench": []}
    for number in range(1, args.runs + 1):
        medians, took = pyperf_run(args.out / f"pyperf-{number}.json")
        found["pyperf"].append(medians)
        spent["pyperf"].append(took)
        medians, took = sqlabench_run(args.out / f"sqlabench-{number}", args.repeat)
        found["sqlabench"].append(medians)
        spent["sqlabench"].append(took)
        print(f"run {number}: pyperf {found['pyperf'][-1]}, sqlabench {medians}", flush=True)
    summary: dict[str, Any] = {}
    for tool, runs in found.items():
        diffs = aa(runs)
        summary[tool] = {
            "medians_us": {n: [round(r[n] * 1e6, 1) for r in runs] for n in runs[0]},
            "seconds_per_benchmark": round(statistics.median(spent[tool]) / len(LAYERS), 1),
            "aa_median": round(statistics.median(diffs), 4),
            "aa_max": round(max(diffs), 4),
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    if "--pyperf-worker" in sys.argv:
        worker_main()
    else:
        main()
