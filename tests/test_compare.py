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
