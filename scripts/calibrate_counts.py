"""Calibrate the count gate: the A/A spread of the counting pass, and what it catches.

    .venv/bin/python scripts/calibrate_counts.py A.json B.json [C.json ...]
        [--out results/counts-aa.json]

A and B are two `sqlabench run ... --instructions` results of the same code, counted in
separate processes from separate checkouts (as `sqlabench gate` counts base and head:
a worktree and this checkout). Each C is a run of the same code with CPU work of a fraction
of each operation's own instructions added inside it:

    SQLABENCH_INJECT_WORK=0.10 SQLABENCH_INJECT_WORK_OF=A.json sqlabench run ... --instructions

Writes OUT with, per count (instructions, py_calls): the largest and the 99th-percentile
relative change between A and B over every benchmark counted on both (the tolerance in
sqlabench/compare.py must cover the largest), how many benchmarks compare would flag
between A and B (false alarms), and for each C the share of benchmarks whose injected work
compare names as a regression against A, with the added fraction actually measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sqlabench import compare, results

KEYS = compare.COUNTS


def counts(result: results.ResultFile, key: str) -> dict[str, float]:
    return {
        b.name: float(b.extra_info[key])
        for b in result.benchmarks
        if isinstance(b.extra_info.get(key), int | float) and b.extra_info[key] > 0
    }


def groups(a: results.ResultFile, b: results.ResultFile) -> dict[str, dict[str, float]]:
    """The largest A/A change per count and (question, mode): what compare's tolerances are
    derived from (some groups are exact, async bulk inserts move by several per cent)."""
    other = {x.name: x for x in b.benchmarks}
    out: dict[str, dict[str, float]] = {}
    for bench in a.benchmarks:
        twin = other.get(bench.name)
        if twin is None:
            continue
        group = f"{bench.question}/{bench.extra_info.get('mode')}"
        for key in KEYS:
            x, y = bench.extra_info.get(key), twin.extra_info.get(key)
            if isinstance(x, int | float) and isinstance(y, int | float) and x > 0:
                seen = out.setdefault(key, {})
                seen[group] = round(max(seen.get(group, 0.0), abs(y / x - 1)), 5)
    return out


def spread(a: results.ResultFile, b: results.ResultFile) -> dict[str, Any]:
    out: dict[str, Any] = {"max_abs_change": {}, "p99_abs_change": {}, "benchmarks": {}}
    worst: dict[str, list[tuple[float, str]]] = {}
    for key in KEYS:
        first, second = counts(a, key), counts(b, key)
        names = sorted(first.keys() & second.keys())
        changes = np.array([abs(second[n] / first[n] - 1) for n in names])
        out["benchmarks"][key] = len(names)
        out["max_abs_change"][key] = round(float(changes.max()), 5) if names else None
        out["p99_abs_change"][key] = round(float(np.percentile(changes, 99)), 5) if names else None
        worst[key] = sorted(
            ((round(abs(second[n] / first[n] - 1), 5), n) for n in names), reverse=True
        )[:5]
    out["largest"] = worst
    return out


def flagged(a: results.ResultFile, b: results.ResultFile) -> list[str]:
    pairs = {x.name: x for x in a.benchmarks}
    return [
        c.name
        for c in b.benchmarks
        if c.name in pairs and compare.count_changes(pairs[c.name], c)[0]
    ]


def detection(a: results.ResultFile, c: results.ResultFile) -> dict[str, Any]:
    base, worked = counts(a, "instructions"), counts(c, "instructions")
    names = sorted(base.keys() & worked.keys())
    # judged on instructions alone: the injected work also adds two Python calls per call
    # (sum, range), which py_calls would catch whatever the size of the work
    by_name = {x.name: x for x in a.benchmarks}
    caught = {
        n for n in names
        if worked[n] / base[n] - 1 > compare.tolerance("instructions", by_name[n])
    }  # fmt: skip
    # benchmarks whose work was sized from a file that had not counted them get none
    injected = {n for n in names if worked[n] / base[n] - 1 > 0.01}
    added = np.array([worked[n] / base[n] - 1 for n in names]) if names else np.array([0.0])
    missed = [n for n in names if n not in caught]
    return {
        "benchmarks": len(names),
        "caught": len([n for n in names if n in caught]),
        "caught_share": round(len([n for n in names if n in caught]) / len(names), 4)
        if names
        else None,
        "added_instructions_median": round(float(np.median(added)), 4),
        "added_instructions_min": round(float(added.min()), 4),
        "missed": [(n, round(worked[n] / base[n] - 1, 4)) for n in missed][:20],
        "injected": len(injected),
        "caught_of_injected": len(caught & injected),
        "injected_work": c.info.injected_work,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("worked", nargs="*", metavar="C")
    parser.add_argument("--out", default="results/counts-aa.json")
    parser.add_argument(
        "--tolerances", default="src/sqlabench/counts_aa.json",
        help="where the per-group A/A spread that compare's tolerances come from is written",
    )  # fmt: skip
    ns = parser.parse_args(argv)
    a, b = results.load(ns.a), results.load(ns.b)
    report: dict[str, Any] = {
        "what": "A/A spread of the counting pass (run --instructions): separate processes, "
        "separate checkouts, same code; and detection of injected CPU work",
        "a": Path(ns.a).name,
        "b": Path(ns.b).name,
        "suite_commit": [a.info.suite_commit, b.info.suite_commit],
        "machine": a.info.machine,
        "python": a.info.python,
        "sqlalchemy": a.info.sqlalchemy,
        "counting": a.info.counting,
        **spread(a, b),
        "aa_flagged": flagged(a, b) + flagged(b, a),
        "injected": {Path(path).name: detection(a, results.load(path)) for path in ns.worked},
    }
    report["max_abs_change_by_group"] = groups(a, b)
    Path(ns.out).write_text(json.dumps(report, indent=2) + "\n")
    Path(ns.tolerances).write_text(json.dumps({
        "what": "largest A/A change per count and question/mode, between two counting passes "
        "of the same code from separate checkouts; compare.py derives its tolerances from it",
        "source": Path(ns.out).name, "a": report["a"], "b": report["b"],
        "python": report["python"], "machine": report["machine"],
        "max_abs_change": report["max_abs_change_by_group"],
    }, indent=2) + "\n")  # fmt: skip
    print(json.dumps({k: report[k] for k in ("max_abs_change", "p99_abs_change", "benchmarks",
                                            "aa_flagged")}, indent=2))  # fmt: skip
    for name, found in report["injected"].items():
        print(f"{name}: caught {found['caught']} of {found['benchmarks']} "
              f"(added {found['added_instructions_median']:+.1%} median)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
