"""`sqlabench calibrate`: its arithmetic, and one small real trial through the command."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from sqlabench import calibrate, results


def test_rates_count_benchmarks_and_gate_runs() -> None:
    trials = [
        {"trial": 1, "benchmarks": 10, "false_alarms": ["x"], "aa_ratios": [1.0] * 10,
         "caught": 18, "compared": 20, "missed": ["y"], "detectable": [0.04] * 20,
         "injected_ratios": [1.1] * 20},
        {"trial": 2, "benchmarks": 10, "false_alarms": [], "aa_ratios": [1.0] * 10,
         "caught": 20, "compared": 20, "missed": [], "detectable": [0.02] * 20,
         "injected_ratios": [1.1] * 20},
    ]  # fmt: skip
    options = calibrate.Options(trials=2, passes=3, profile="quick", threshold=5.0, slowdown=0.1)
    summary = calibrate.summarize(trials, options)["summary"]
    assert summary["false_alarms_per_benchmark"] == "1 of 20 (5.0%)"
    assert summary["gate_runs_with_a_false_alarm"] == "1 of 2"
    assert summary["slowdowns_caught"] == "38 of 40 (95.0%)"
    assert summary["median_detectable_change"] == "±3.0%"
    assert "run args engines -b sqlite," in summary["setup"]


def test_one_trial_runs_three_sides_and_slows_only_c(tmp_path: Path) -> None:
    done = run_cli(
        "calibrate", "--trials", "1", "--passes", "1", "--profile", "smoke",
        "--out", str(tmp_path), "--",
        "engines", "-b", "sqlite", "--only", "test_engines[sqlite-raw-pk_lookup]",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"wrote {tmp_path / 'calibration.json'}"
    report = json.loads((tmp_path / "calibration.json").read_text())
    [trial] = report["trials"]
    assert trial["benchmarks"] == 1 and trial["compared"] == 2
    assert "false_alarms_per_benchmark: " in done.stdout
    slowed = {
        side: results.load(next((tmp_path / "trial1" / side).glob("*.json"))).info
        for side in calibrate.SIDES
    }
    assert [slowed[s].injected_slowdown for s in calibrate.SIDES] == [0.0, 0.0, 0.1]


def test_a_failing_pass_is_one_line(tmp_path: Path) -> None:
    done = run_cli("calibrate", "--trials", "1", "--out", str(tmp_path), "--", "nosuchquestion")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    log = tmp_path / "runs.log"
    assert line == f"sqlabench: error: a pass of side a failed (exit 2); see {log}"
    assert "unknown question 'nosuchquestion'" in log.read_text()


def test_a_pass_is_the_result_file_it_wrote_not_its_report(tmp_path: Path) -> None:
    """With --report among the run arguments the last "wrote" line names the report."""
    done = calibrate.run_pass(
        "a", tmp_path / "out",
        ["engines", "-p", "smoke", "-b", "sqlite", "-k", "raw and pk_lookup",
         "--report", str(tmp_path / "report")],
        0.0, tmp_path / "log",
    )  # fmt: skip
    assert done.suffix == ".json" and done.resolve().parent == (tmp_path / "out").resolve()
    assert results.load(done).benchmarks
