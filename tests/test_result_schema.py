"""The result file's JSON Schema (docs/result.schema.json) against real result files.

Every result committed under results/ and files freshly written by `sqlabench run` (the real
writer, in a subprocess) must validate; deliberately broken copies must not, each failing where
it was broken. The schema's run-info and backend objects must list exactly the fields of
results.RunInfo and results.BackendInfo, so a field added to the code without the schema fails
here rather than in a reader.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from sqlabench import results
from sqlabench.embedded import POSTGRES_URL_ENV

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "docs" / "result.schema.json"
RESULTS_DIR = ROOT / "results"
GENERATED = frozenset({"runs", "latest", "charts", "report", "pr", "calibration", "matrix"})
"""Directories under results/ that runs write into (git-ignored): not committed results."""
NOT_RESULTS = frozenset({"counts-aa.json", "gate-calibration-2026-11-25.json"})
"""Committed JSON under results/ that are calibration reports, not result files."""

Json = dict[str, Any]
Mutation = Callable[[Json], None]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`sqlabench ARGS` in a subprocess, as a user runs it (SQLite only: no server named)."""
    env = {k: v for k, v in os.environ.items() if k != POSTGRES_URL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "sqlabench", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip


def read_json(path: Path) -> Any:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)  # a malformed schema would accept anything
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, data: Any) -> list[ValidationError]:
    return sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))


def describe(found: list[ValidationError]) -> str:
    return "\n".join(f"{e.json_path}: {e.message[:200]}" for e in found[:10])


def committed_results() -> list[Path]:
    found = []
    for path in sorted(RESULTS_DIR.rglob("*")):
        relative = path.relative_to(RESULTS_DIR)
        if relative.parts[0] in GENERATED or path.name in NOT_RESULTS:
            continue
        if path.name.endswith((".json", ".json.gz")):
            found.append(path)
    return found


def test_the_committed_results_are_found() -> None:
    # a glob that finds nothing would make the next test pass vacuously
    names = {p.relative_to(RESULTS_DIR).as_posix() for p in committed_results()}
    assert "baseline.json" in names
    assert any(n.startswith("published/") and n.endswith(".json.gz") for n in names), names
    assert any(n.startswith("published/pools/") for n in names), names


def test_the_reports_left_out_are_not_results() -> None:
    for name in NOT_RESULTS:
        [path] = RESULTS_DIR.rglob(name)
        data = read_json(path)
        assert isinstance(data, dict) and results.RESULT_KEY not in data, path


@pytest.mark.parametrize(
    "path", committed_results(), ids=lambda p: p.relative_to(RESULTS_DIR).as_posix()
)
def test_every_committed_result_validates(validator: Draft202012Validator, path: Path) -> None:
    found = errors(validator, read_json(path))
    assert not found, f"{path}:\n{describe(found)}"
    results.load(path)  # and the reader agrees it is a result


@pytest.fixture(scope="module")
def fresh_results(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Result files written by `sqlabench run` itself: three questions on SQLite in two passes
    (merged, as every run's file is), and one benchmark with the counting pass."""
    out = tmp_path_factory.mktemp("fresh")
    runs = [
        ("run", "all", "--profile", "smoke", "-b", "sqlite", "--repeat", "2"),
        ("run", "engines", "--profile", "smoke", "-b", "sqlite", "-k", "raw and pk_lookup",
         "--instructions"),
    ]  # fmt: skip
    written: list[Path] = []
    for i, args in enumerate(runs):
        directory = out / str(i)
        done = run_cli(*args, "--out", str(directory))
        assert done.returncode == 0, done.stderr
        [path] = directory.glob("*.json")
        written.append(path)
    return written


def test_freshly_written_results_validate(
    validator: Draft202012Validator, fresh_results: list[Path]
) -> None:
    for path in fresh_results:
        data = read_json(path)
        found = errors(validator, data)
        assert not found, f"{path}:\n{describe(found)}"
        # the writer writes every RunInfo field: none of the schema's optional ones is missing
        run_fields = {f.name for f in dataclasses.fields(results.RunInfo)}
        assert set(data[results.RESULT_KEY]) == run_fields
        questions = {b["extra_info"]["question"] for b in data["benchmarks"]}
        assert questions, path
    first = read_json(fresh_results[0])
    assert {b["extra_info"]["question"] for b in first["benchmarks"]} == {
        "engines", "loading", "bulk_insert"
    }  # fmt: skip
    counted = read_json(fresh_results[1])
    assert counted[results.RESULT_KEY]["counting"] is not None
    assert all("py_calls" in b["extra_info"] for b in counted["benchmarks"])


def schema_properties(validator: Draft202012Validator, definition: str) -> set[str]:
    schema: Json = validator.schema  # type: ignore[assignment]
    return set(schema["$defs"][definition]["properties"])


def test_the_schema_lists_exactly_the_fields_of_the_code(
    validator: Draft202012Validator,
) -> None:
    assert schema_properties(validator, "runInfo") == {
        f.name for f in dataclasses.fields(results.RunInfo)
    }
    assert schema_properties(validator, "backend") == {
        f.name for f in dataclasses.fields(results.BackendInfo)
    }
    schema: Json = validator.schema  # type: ignore[assignment]
    version = schema["$defs"]["runInfo"]["properties"]["schema_version"]["const"]
    assert version == results.SCHEMA_VERSION


# --- deliberately broken copies: each must fail, and fail where it was broken -------------


def first_of(data: Json, question: str) -> Json:
    bench: Json = next(b for b in data["benchmarks"] if b["extra_info"]["question"] == question)
    return bench


def without(key: str) -> Mutation:
    return lambda data: data[results.RESULT_KEY].pop(key)


def set_run(key: str, value: Any) -> Mutation:
    return lambda data: data[results.RESULT_KEY].__setitem__(key, value)


def set_stat(key: str, value: Any) -> Mutation:
    return lambda data: data["benchmarks"][0]["stats"].__setitem__(key, value)


def set_extra(key: str, value: Any, question: str = "engines") -> Mutation:
    return lambda data: first_of(data, question)["extra_info"].__setitem__(key, value)


def drop_extra(key: str, question: str) -> Mutation:
    return lambda data: first_of(data, question)["extra_info"].pop(key)


BROKEN: dict[str, tuple[Mutation, str]] = {
    # name: (how the copy is broken, the JSON path the error must name)
    "no schema version": (without("schema_version"), "$.sqlabench"),
    "a schema version not 1": (set_run("schema_version", 2), "$.sqlabench.schema_version"),
    "schema version as a string": (set_run("schema_version", "1"), "$.sqlabench.schema_version"),
    "no sqlabench object": (lambda d: d.pop(results.RESULT_KEY), "$"),
    "benchmarks not a list": (lambda d: d.__setitem__("benchmarks", {}), "$.benchmarks"),
    "a misspelt run field": (set_run("rtt_msec", 0.0), "$.sqlabench"),
    "complete as a string": (set_run("complete", "yes"), "$.sqlabench.complete"),
    "started not a timestamp": (set_run("started", "yesterday"), "$.sqlabench.started"),
    "no backends": (without("backends"), "$.sqlabench"),
    "a backend without its driver": (
        lambda d: d[results.RESULT_KEY]["backends"][0].pop("driver"),
        "$.sqlabench.backends[0]",
    ),
    "a failure without its error": (
        set_run("failures", [{"benchmark": "x"}]),
        "$.sqlabench.failures[0]",
    ),
    "median as a string": (set_stat("median", "0.001"), "$.benchmarks[0].stats.median"),
    "a negative min": (set_stat("min", -1.0), "$.benchmarks[0].stats.min"),
    "rounds as a float": (set_stat("rounds", 3.0 + 0.5), "$.benchmarks[0].stats.rounds"),
    "no rounds": (
        lambda d: d["benchmarks"][0]["stats"].pop("rounds"),
        "$.benchmarks[0].stats",
    ),
    "a round that is not a number": (
        lambda d: d["benchmarks"][0]["stats"]["data"].__setitem__(0, "fast"),
        "$.benchmarks[0].stats.data[0]",
    ),
    "a benchmark without stats": (lambda d: d["benchmarks"][0].pop("stats"), "$.benchmarks[0]"),
    "a benchmark without a name": (lambda d: d["benchmarks"][0].pop("name"), "$.benchmarks[0]"),
    "verified as a string": (
        set_extra("verified", "yes"),
        "$.benchmarks[{engines}].extra_info.verified",
    ),
    "no verified": (drop_extra("verified", "engines"), "$.benchmarks[{engines}].extra_info"),
    "an unknown mode": (set_extra("mode", "both"), "$.benchmarks[{engines}].extra_info.mode"),
    "statements as a string": (
        set_extra("statements", "1"),
        "$.benchmarks[{engines}].extra_info.statements",
    ),
    "an engines benchmark without its layer": (
        drop_extra("layer", "engines"),
        "$.benchmarks[{engines}].extra_info",
    ),
    "a loading benchmark without rows_fetched": (
        drop_extra("rows_fetched", "loading"),
        "$.benchmarks[{loading}].extra_info",
    ),
    "a bulk insert without its checksum": (
        drop_extra("contents_checksum", "bulk_insert"),
        "$.benchmarks[{bulk_insert}].extra_info",
    ),
    "a pools point without its latency": (
        drop_extra("latency_ms", "pools"),
        "$.benchmarks[{pools}].extra_info",
    ),
    "a pools latency as a string": (
        lambda d: first_of(d, "pools")["extra_info"]["latency_ms"].__setitem__("p99", "3 ms"),
        "$.benchmarks[{pools}].extra_info.latency_ms.p99",
    ),
}


@pytest.fixture(scope="module")
def valid_result() -> Json:
    """The published full run cut to the first two benchmarks of each question (the whole
    file takes seconds to validate; it is validated whole above)."""
    [path] = (RESULTS_DIR / "published").glob("*-full.json.gz")
    data: Json = read_json(path)
    kept: dict[str, list[Json]] = {}
    for bench in data["benchmarks"]:
        kept.setdefault(bench["extra_info"]["question"], []).append(bench)
    data["benchmarks"] = [b for benches in kept.values() for b in benches[:2]]
    assert set(kept) == {"engines", "loading", "bulk_insert", "pools"}
    return data


def where(data: Json, path: str) -> str:
    """The expected JSON path, with {question} as the index of that question's first benchmark."""
    for question in ("engines", "loading", "bulk_insert", "pools"):
        index = data["benchmarks"].index(first_of(data, question))
        path = path.replace(f"{{{question}}}", str(index))
    return path


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_result_is_refused_where_it_is_broken(
    validator: Draft202012Validator, valid_result: Json, name: str
) -> None:
    assert not errors(validator, valid_result)
    broken = copy.deepcopy(valid_result)
    mutate, expected = BROKEN[name]
    mutate(broken)
    found = errors(validator, broken)
    assert found, f"the schema accepted a result with {name}"
    paths = {e.json_path for e in found} | {e.json_path for top in found for e in iter_context(top)}
    assert where(valid_result, expected) in paths, describe(found)


def iter_context(error: ValidationError) -> Iterator[ValidationError]:
    """The errors inside an anyOf/oneOf/if-then failure (where the real cause is)."""
    for inner in error.context or ():
        yield inner
        yield from iter_context(inner)


def test_a_broken_copy_on_disk_fails_as_a_committed_one_would(
    validator: Draft202012Validator, tmp_path: Path
) -> None:
    # the same check test_every_committed_result_validates makes, on a gzipped copy of the
    # published result whose first median was made a string: it must not pass
    [source] = (RESULTS_DIR / "published").glob("*-full.json.gz")
    data = read_json(source)
    data["benchmarks"][0]["stats"]["median"] = str(data["benchmarks"][0]["stats"]["median"])
    broken = tmp_path / source.name
    broken.write_bytes(gzip.compress(json.dumps(data).encode()))
    found = errors(validator, read_json(broken))
    assert [e.json_path for e in found] == ["$.benchmarks[0].stats.median"]
