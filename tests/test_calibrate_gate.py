"""scripts/calibrate_gate.py's arithmetic (its runs are real benchmark runs, made by hand)."""

from __future__ import annotations

import argparse

from conftest import load_script


def test_rates_count_benchmarks_and_gate_runs() -> None:
    gate = load_script("calibrate_gate")
    trials = [
        {"trial": 1, "benchmarks": 10, "false_alarms": ["x"], "aa_ratios": [1.0] * 10,
         "caught": 18, "compared": 20, "missed": ["y"], "detectable": [0.04] * 20,
         "injected_ratios": [1.1] * 20},
        {"trial": 2, "benchmarks": 10, "false_alarms": [], "aa_ratios": [1.0] * 10,
         "caught": 20, "compared": 20, "missed": [], "detectable": [0.02] * 20,
         "injected_ratios": [1.1] * 20},
    ]  # fmt: skip
    options = argparse.Namespace(
        trials=2, passes=3, profile="quick", run_args=[], threshold=5.0, slowdown=0.1
    )
    summary = gate.summarize(trials, options)["summary"]
    assert summary["false_alarms_per_benchmark"] == "1 of 20 (5.0%)"
    assert summary["gate_runs_with_a_false_alarm"] == "1 of 2"
    assert summary["slowdowns_caught"] == "38 of 40 (95.0%)"
    assert summary["median_detectable_change"] == "±3.0%"
