"""Measure the regression gate itself on this machine: how often it cries wolf, how often it
catches a slowdown of known size (`sqlabench calibrate`).

Each trial runs three sides in turn, pass by pass, as `sqlabench gate` runs base and head:
A, B, C, A, B, C, ... K passes each. A and B are the same code (an A/A pair: anything the gate
flags between them is a false alarm). C is the same code with every timed operation made
`slowdown` slower on purpose (SQLABENCH_INJECT_SLOWDOWN: a busy-wait of that fraction of
each call's own time, inside the timed region), so the gate should flag every benchmark in
A/C and B/C. Each side's passes are merged, then compared with `sqlabench compare`'s rules
and threshold. The false-alarm rate per benchmark and per gate run, and the detection rate
with the smallest changes the noise allowed to detect, go to OUT/calibration.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlabench import compare, files, results
from sqlabench.errors import SqlabenchError
from sqlabench.measure import SLOWDOWN_ENV

SIDES = ("a", "b", "c")
DEFAULT_RUN_ARGS = ("engines", "-b", "sqlite")


@dataclass(frozen=True)
class Options:
    trials: int = 5
    passes: int = 3
    slowdown: float = 0.10
    threshold: float = 5.0
    """Percent, as `sqlabench compare --threshold`."""
    profile: str = "quick"
    out: Path = Path("results/calibration")
    run_args: list[str] = field(default_factory=list)
    """Questions and `sqlabench run` options; none means DEFAULT_RUN_ARGS."""


def run_pass(side: str, out: Path, args: list[str], slowdown: float, log: Path) -> Path:
    """One `sqlabench run` pass of a side; the result file it wrote."""
    env = dict(os.environ)
    env.pop(SLOWDOWN_ENV, None)
    if side == "c":
        env[SLOWDOWN_ENV] = str(slowdown)
    with log.open("a", encoding="utf-8") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "sqlabench", "run", *args, "--out", str(out)],
            stdout=subprocess.PIPE, stderr=sink, text=True, env=env, check=False,
        )  # fmt: skip
    written = [  # the result file, in --out (with --report, a report line follows it)
        line.removeprefix("wrote ")
        for line in done.stdout.splitlines()
        if line.startswith("wrote ") and Path(line.removeprefix("wrote ")).parent == out
    ]
    if done.returncode != 0 or not written:
        raise SqlabenchError(f"a pass of side {side} failed (exit {done.returncode}); see {log}")
    return Path(written[-1])


def merged(paths: list[Path]) -> results.ResultFile:
    return results.parse(results.merge_files(paths), "merged")


def calibrate(options: Options, say: Callable[[str], None]) -> tuple[dict[str, Any], Path]:
    """Run the trials; the report (its `summary` in a few lines) and the file it went to."""
    if options.trials < 1 or options.passes < 1:
        raise SqlabenchError("--trials and --passes must be at least 1")
    run_args = options.run_args or list(DEFAULT_RUN_ARGS)
    # one process per pass: the schedule of passes is what samples processes here
    args = [*run_args, "--profile", options.profile, "--repeat", "1"]
    results.ensure_writable_dir(options.out)
    log = options.out / "runs.log"

    trials: list[dict[str, Any]] = []
    started = time.monotonic()
    for trial in range(1, options.trials + 1):
        paths: dict[str, list[Path]] = {side: [] for side in SIDES}
        for number in range(1, options.passes + 1):
            for side in SIDES:
                out = options.out / f"trial{trial}" / side
                paths[side].append(run_pass(side, out, args, options.slowdown, log))
                say(
                    f"trial {trial}/{options.trials} pass {number}/{options.passes} side {side} "
                    f"done ({time.monotonic() - started:.0f} s)"
                )
        sides = {side: merged(p) for side, p in paths.items()}
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
        say(summary_line(trials[-1]))

    report = summarize(trials, options)
    path = files.write_atomic(
        options.out / "calibration.json", json.dumps(report, indent=2) + "\n", overwrite=True
    )
    return report, path


def summary_line(trial: dict[str, Any]) -> str:
    return (
        f"trial {trial['trial']}: A/A {len(trial['false_alarms'])} false alarm(s) of "
        f"{trial['benchmarks']}; injected slowdown caught {trial['caught']} of {trial['compared']}"
    )


def summarize(trials: Sequence[dict[str, Any]], options: Options) -> dict[str, Any]:
    compared_aa = sum(t["benchmarks"] for t in trials)
    alarms = sum(len(t["false_alarms"]) for t in trials)
    caught = sum(t["caught"] for t in trials)
    compared = sum(t["compared"] for t in trials)
    detectable = [d for t in trials for d in t["detectable"] if d == d]
    run_args = " ".join(options.run_args or DEFAULT_RUN_ARGS)
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
