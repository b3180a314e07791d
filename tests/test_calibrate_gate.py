"""scripts/calibrate_gate.py's arithmetic (its runs are real benchmark runs, made by hand)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from conftest import ROOT


def load() -> object:
    spec = importlib.util.spec_from_file_location(
        "calibrate_gate", ROOT / "scripts" / "calibrate_gate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibrate_gate"] = module
    spec.loader.exec_module(module)
    return module


def test_rates_count_benchmarks_and_gate_runs() -> None:
    gate = load()
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
    summary = gate.summarize(trials, options)["summary"]  # type: ignore[attr-defined]
    assert summary["false_alarms_per_benchmark"] == "1 of 20 (5.0%)"
    assert summary["gate_runs_with_a_false_alarm"] == "1 of 2"
    assert summary["slowdowns_caught"] == "38 of 40 (95.0%)"
    assert summary["median_detectable_change"] == "±3.0%"
