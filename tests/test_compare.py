"""compare: the verdicts, the like-for-like warnings, and exit codes, on synthetic results."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

from conftest import run_cli
from sqlabench import compare, results
from test_results import make_result


def run_with(benchmarks: dict[str, tuple[float, int]], seed: int = 1) -> dict[str, Any]:
    """A result whose benchmarks have 200 noisy rounds around a median, and a statement count."""
    rng = random.Random(seed)
    data = make_result()
    data["benchmarks"] = []
    for name, (median, statements) in benchmarks.items():
        rounds = sorted(median * rng.lognormvariate(0, 0.05) for _ in range(200))
        data["benchmarks"].append(
            {
                "name": name,
                "fullname": name,
                "extra_info": {
                    "question": "engines",
                    "backend": "sqlite",
                    "statements": statements,
                },
                "stats": {"median": rounds[100], "data": rounds},
            }
        )
    return data


BENCHMARKS = {f"test_engines[sqlite-raw-case{i}]": (1e-4 * (i + 1), 1) for i in range(20)}


def as_result(data: dict[str, Any]) -> results.ResultFile:
    return results.parse(data, "test")


def scaled(data: dict[str, Any], name: str, factor: float) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for b in out["benchmarks"]:
        if b["name"] == name:
            b["stats"]["data"] = [x * factor for x in b["stats"]["data"]]
            b["stats"]["median"] *= factor
    return out


def test_a_run_against_itself_has_no_change() -> None:
    base = as_result(run_with(BENCHMARKS))
    result = compare.compare(base, base)
    assert result.regressions == () and result.improvements == ()
    assert {c.verdict for c in result.changes} == {"unchanged"}


def test_a_clear_slowdown_is_named_and_an_equal_rerun_is_not() -> None:
    base = run_with(BENCHMARKS, seed=1)
    rerun = run_with(BENCHMARKS, seed=2)  # same medians, new noise
    name = "test_engines[sqlite-raw-case3]"
    result = compare.compare(as_result(base), as_result(scaled(rerun, name, 1.30)))
    assert [c.name for c in result.regressions] == [name]
    [slow] = result.regressions
    assert slow.ci_low > 1 and slow.ratio > 1.2
    faster = compare.compare(as_result(base), as_result(scaled(rerun, name, 1 / 1.30)))
    assert [c.name for c in faster.improvements] == [name] and faster.regressions == ()


def test_a_slowdown_under_the_threshold_is_not_a_regression() -> None:
    base = run_with(BENCHMARKS, seed=1)
    name = "test_engines[sqlite-raw-case3]"
    result = compare.compare(as_result(base), as_result(scaled(base, name, 1.30)), threshold=0.5)
    assert result.regressions == ()


def test_more_statements_is_a_regression_whatever_the_time() -> None:
    base = run_with(BENCHMARKS)
    more = copy.deepcopy(base)
    more["benchmarks"][0]["extra_info"]["statements"] = 2
    result = compare.compare(as_result(base), as_result(more))
    [regression] = result.regressions
    assert regression.verdict == "more-work" and regression.reasons == ("statements 1 → 2",)


def test_not_like_for_like_is_warned() -> None:
    base = run_with(BENCHMARKS)
    other = copy.deepcopy(base)
    other["sqlabench"]["rtt_ms"] = 2.0
    other["sqlabench"]["scenario_hashes"] = {"engines": "new"}
    base["sqlabench"]["scenario_hashes"] = {"engines": "old"}
    warnings = compare.compare(as_result(base), as_result(other)).warnings
    assert any("rtt_ms differs" in w for w in warnings)
    assert any("engines scenario's source changed" in w for w in warnings)


def test_a_changed_measuring_harness_is_warned() -> None:
    base = run_with(BENCHMARKS)
    base["sqlabench"]["harness_hash"] = "1111"
    same, changed, older = copy.deepcopy(base), copy.deepcopy(base), copy.deepcopy(base)
    changed["sqlabench"]["harness_hash"] = "2222"
    del older["sqlabench"]["harness_hash"]  # a file from before the hash was recorded

    def harness_warnings(current: dict[str, Any]) -> list[str]:
        found = compare.compare(as_result(base), as_result(current)).warnings
        return [w for w in found if "harness" in w]

    assert harness_warnings(same) == []
    assert harness_warnings(older) == []
    [warning] = harness_warnings(changed)
    assert warning.startswith("not like for like: the measuring harness's source")


def test_cli_exit_codes_and_formats(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps(run_with(BENCHMARKS)))
    more = run_with(BENCHMARKS)
    more["benchmarks"][5]["extra_info"]["statements"] = 3
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(more))
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": "world"}')

    same = run_cli("compare", str(base), str(base))
    assert same.returncode == 0, same.stderr
    regressed = run_cli("compare", str(base), str(worse), "--format", "markdown")
    assert regressed.returncode == 1
    assert regressed.stdout.startswith("### sqlabench: **1 regression(s)**")
    assert "test_engines[sqlite-raw-case5]" in regressed.stdout
    as_json = run_cli("compare", str(base), str(worse), "--format", "json")
    assert json.loads(as_json.stdout)["regressions"] == 1
    for bad, message in ((junk, "not a benchmark result"), (tmp_path / "nope.json", "no such")):
        done = run_cli("compare", str(base), str(bad))
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr


def with_passes(
    medians: dict[str, float],
    drifts: list[float],
    seed: int,
    slower: dict[str, float] | None = None,
    rounds_per_pass: int = 20,
    spread: float = 0.25,
) -> dict[str, Any]:
    """A --repeat result: every pass shifted by its drift (shared by all benchmarks, as a busy
    machine shifts them), noisy rounds, the rounds of each pass in time order."""
    rng = random.Random(seed)
    data = make_result()
    data["benchmarks"] = []
    for name, median in medians.items():
        factor = (slower or {}).get(name, 1.0)
        rounds = [
            median * factor * drift * rng.lognormvariate(0, spread)
            for drift in drifts
            for _ in range(rounds_per_pass)
        ]
        data["benchmarks"].append(
            {
                "name": name,
                "fullname": name,
                "extra_info": {"question": "engines", "backend": "sqlite", "statements": 1,
                               "pass_rounds": [rounds_per_pass] * len(drifts)},
                "stats": {"median": sorted(rounds)[len(rounds) // 2], "data": rounds},
            }
        )  # fmt: skip
    return data


MANY = {f"test_engines[sqlite-raw-case{i}]": 1e-4 * (1 + i % 7) for i in range(400)}


def test_one_benchmark_scaled_by_110_among_400_noisy_ones_is_named(tmp_path: Path) -> None:
    """The acceptance check: a copy with one benchmark's rounds x1.10 exits 1 and names it,
    even when rounds spread widely and 400 benchmarks are compared at once."""
    rng = random.Random(3)
    base = run_with({})
    for name, median in MANY.items():
        rounds = [median * rng.lognormvariate(0, 0.4) for _ in range(15)]  # unsorted, noisy
        base["benchmarks"].append(
            {"name": name, "fullname": name,
             "extra_info": {"question": "engines", "backend": "sqlite", "statements": 1},
             "stats": {"median": sorted(rounds)[7], "data": rounds}}
        )  # fmt: skip
    name = "test_engines[sqlite-raw-case123]"
    paths = {"base": base, "slow": scaled(base, name, 1.10)}
    for stem, data in paths.items():
        (tmp_path / f"{stem}.json").write_text(json.dumps(data))
    same = run_cli("compare", str(tmp_path / "base.json"), str(tmp_path / "base.json"))
    assert same.returncode == 0
    slow = run_cli("compare", str(tmp_path / "base.json"), str(tmp_path / "slow.json"))
    assert slow.returncode == 1, slow.stdout
    assert name in slow.stdout and "1 regression(s)" in slow.stdout


def test_interleaved_passes_absorb_drift_that_fools_a_test_over_rounds() -> None:
    """A/A with every pass drifting up to 30%: no regression among 400, where rounds treated as
    independent samples would call many of them changed."""
    base_drifts = [1.0, 1.3, 0.9, 1.15, 1.05]
    head_drifts = [1.02, 1.25, 0.95, 1.2, 1.0]  # the neighbour passes of an interleaved run
    base = as_result(with_passes(MANY, base_drifts, seed=1))
    head = as_result(with_passes(MANY, head_drifts, seed=2))
    result = compare.compare(base, head)
    assert result.regressions == () and result.improvements == ()
    assert {c.unit for c in result.changes} == {"pass"}


def test_interleaved_passes_catch_a_ten_percent_slowdown() -> None:
    drifts = [1.0, 1.3, 0.9, 1.15, 1.05, 0.95, 1.1, 1.0, 1.2, 0.9]
    name = "test_engines[sqlite-raw-case7]"
    head = with_passes(MANY, drifts, seed=2, slower={name: 1.10}, rounds_per_pass=50, spread=0.1)
    base = as_result(with_passes(MANY, drifts, seed=1, rounds_per_pass=50, spread=0.1))
    result = compare.compare(base, as_result(head))
    assert [c.name for c in result.regressions] == [name]
