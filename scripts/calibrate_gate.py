"""Measure the regression gate itself on this machine: how often it cries wolf, how often it
catches a slowdown of known size.

    .venv/bin/python scripts/calibrate_gate.py [--trials 5] [--passes 3] [--slowdown 0.10]
        [--profile quick] [--out results/calibration] [-- run options, default: engines -b sqlite]

Each trial runs three sides in turn, pass by pass, as scripts/bench_pr.py runs base and head:
A, B, C, A, B, C, ... K passes each. A and B are the same code (an A/A pair: anything the gate
flags between them is a false alarm). C is the same code with every timed operation made
`--slowdown` slower on purpose (SQLABENCH_INJECT_SLOWDOWN: a busy-wait of that fraction of
each call's own time, inside the timed region), so the gate should flag every benchmark in
A/C and B/C. Each side's passes are merged, then compared with `sqlabench compare`'s rules
and default threshold. Prints and writes (OUT/calibration.json) the false-alarm rate per
benchmark and per gate run, and the detection rate with the smallest changes the noise
allowed to detect.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlabench import compare, results
from sqlabench.measure import SLOWDOWN_ENV

SIDES = ("a", "b", "c")


def run_pass(side: str, out: Path, args: list[str], slowdown: float, log: Path) -> Path:
    env = dict(os.environ)
    env.pop(SLOWDOWN_ENV, None)
    if side == "c":
        env[SLOWDOWN_ENV] = str(slowdown)
    with log.open("a", encoding="utf-8") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "sqlabench", "run", *args, "--out", str(out)],
            stdout=subprocess.PIPE, stderr=sink, text=True, env=env, check=False,
        )  # fmt: skip
    written = [
        line.removeprefix("wrote ")
        for line in done.stdout.splitlines()
        if line.startswith("wrote ")
    ]
    if done.returncode != 0 or not written:
        sys.exit(f"calibrate_gate: a {side} pass failed (exit {done.returncode}); see {log}")
    return Path(written[-1])


def merged(paths: list[Path]) -> results.ResultFile:
    return results.parse(results.merge_files(paths), "merged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--slowdown", type=float, default=0.10)
    parser.add_argument("--threshold", type=float, default=5.0, help="percent, as compare")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, default=Path("results/calibration"))
    parser.add_argument("run_args", nargs="*", help="after --: questions and run options")
    options = parser.parse_args()
    run_args = options.run_args or ["engines", "-b", "sqlite"]
    args = [*run_args, "--profile", options.profile]
    options.out.mkdir(parents=True, exist_ok=True)
    log = options.out / "runs.log"

    trials: list[dict[str, Any]] = []
    started = time.monotonic()
    for trial in range(1, options.trials + 1):
        files: dict[str, list[Path]] = {side: [] for side in SIDES}
        for number in range(1, options.passes + 1):
            for side in SIDES:
                out = options.out / f"trial{trial}" / side
                files[side].append(run_pass(side, out, args, options.slowdown, log))
                print(
                    f"trial {trial}/{options.trials} pass {number}/{options.passes} side {side} "
                    f"done ({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                )
        sides = {side: merged(paths) for side, paths in files.items()}
        threshold = options.threshold / 100
        aa = compare.compare(sides["a"], sides["b"], threshold)
        detections = [compare.compare(sides[s], sides["c"], threshold) for s in ("a", "b")]
        trials.append(
            {
                "trial": trial,
                "benchmarks": len(aa.changes),
                "false_alarms": [c.name for c in aa.changes if c.verdict != "unchanged"],
                "aa_ratios": [c.ratio for c in aa.changes],
                "caught": sum(1 for d in detections for c in d.changes if c.verdict == "slower"),
                "compared": sum(len(d.changes) for d in detections),
                "missed": sorted(
                    {c.name for d in detections for c in d.changes if c.verdict != "slower"}
                ),
                "detectable": [c.detectable for d in detections for c in d.changes],
                "injected_ratios": [c.ratio for d in detections for c in d.changes],
            }
        )
        print(summary_line(trials[-1]), file=sys.stderr)

    report = summarize(trials, options)
    path = options.out / "calibration.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for key, value in report["summary"].items():
        print(f"{key}: {value}")
    print(f"wrote {path}")


def summary_line(trial: dict[str, Any]) -> str:
    return (
        f"trial {trial['trial']}: A/A {len(trial['false_alarms'])} false alarm(s) of "
        f"{trial['benchmarks']}; injected slowdown caught {trial['caught']} of {trial['compared']}"
    )


def summarize(trials: list[dict[str, Any]], options: argparse.Namespace) -> dict[str, Any]:
    compared_aa = sum(t["benchmarks"] for t in trials)
    alarms = sum(len(t["false_alarms"]) for t in trials)
    caught = sum(t["caught"] for t in trials)
    compared = sum(t["compared"] for t in trials)
    detectable = [d for t in trials for d in t["detectable"] if d == d]
    run_args = " ".join(options.run_args) or "engines -b sqlite"
    injected = [r for t in trials for r in t["injected_ratios"]]
    return {
        "summary": {
            "setup": f"{options.trials} trials x {options.passes} passes per side, "
            f"{options.profile} profile, run args {run_args}, "
            f"threshold {options.threshold:g}%, injected slowdown {options.slowdown:.0%}",
            "false_alarms_per_benchmark": f"{alarms} of {compared_aa} "
            f"({alarms / max(compared_aa, 1):.1%})",
            "gate_runs_with_a_false_alarm": f"{sum(1 for t in trials if t['false_alarms'])} of "
            f"{len(trials)}",
            "slowdowns_caught": f"{caught} of {compared} ({caught / max(compared, 1):.1%})",
            "median_measured_ratio_of_injected": f"{statistics.median(injected):.3f}"
            if injected
            else "-",
            "median_detectable_change": f"±{statistics.median(detectable):.1%}"
            if detectable
            else "-",
        },
        "trials": trials,
    }


if __name__ == "__main__":
    main()
