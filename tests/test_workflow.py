"""The benchmarks workflow, checked offline: it parses, and everything it calls exists here."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT
from sqlabench.cli import cli

WORKFLOW = ROOT / ".github" / "workflows" / "benchmarks.yml"


def load() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def triggers(data: dict[Any, Any]) -> dict[str, Any]:
    on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    return on if isinstance(on, dict) else {name: None for name in ([on] if on else [])}


def make_targets() -> dict[str, list[str]]:
    """Each target of the Makefile with its recipe lines."""
    targets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?![=])", line)
        if match:
            current = targets.setdefault(match.group(1), [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def run_scripts(data: dict[Any, Any]) -> list[str]:
    return [
        step["run"]
        for job in data["jobs"].values()
        for step in job.get("steps", [])
        if isinstance(step.get("run"), str)
    ]


def called(scripts: list[str]) -> tuple[set[str], set[str], set[str]]:
    """The make targets, sqlabench subcommands and script paths these shell lines call."""
    targets, commands, paths = set(), set(), set()
    for text in scripts:
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["make"]:  # make [VAR=value | -option | target]...
                targets |= {w for w in words[1:] if "=" not in w and not w.startswith("-")}
        commands |= set(re.findall(r"(?:^|[\s/])sqlabench\s+([a-z][\w-]*)", text))
        paths |= set(re.findall(r"(?:^|\s)(scripts/[\w./-]+)", text))
    return targets, commands, paths


def test_it_parses_and_has_both_triggers() -> None:
    data = load()
    on = triggers(data)
    assert "pull_request" in on and "push" in on
    assert on["push"]["branches"] == ["main"]
    assert data["jobs"], "no jobs"


def test_the_gate_job_runs_against_a_postgres_service() -> None:
    data = load()
    [gate] = [j for j in data["jobs"].values() if "pull_request" in str(j.get("if", ""))]
    service = gate["services"]["postgres"]
    assert service["image"] == "postgres:16"
    assert service["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "--health-cmd" in service["options"]
    assert data["env"]["SQLABENCH_POSTGRES_URL"].startswith("postgresql://")
    uses = {str(step.get("uses", "")).split("@")[0]: step for step in gate["steps"]}
    assert uses["actions/checkout"]["with"]["fetch-depth"] == 0
    for job in data["jobs"].values():
        uploads = [s for s in job["steps"] if str(s.get("uses")) == "actions/upload-artifact@v4"]
        assert uploads and all(s.get("if") == "always()" for s in uploads)


def test_everything_it_calls_exists() -> None:
    scripts = run_scripts(load())
    targets, commands, paths = called(scripts)
    known = make_targets()
    assert targets, "the workflow calls no make target"
    assert targets <= set(known), f"not Makefile targets: {targets - set(known)}"
    # what those targets run must exist too
    _, more_commands, more_paths = called([line for t in targets for line in known[t]])
    commands |= more_commands
    paths |= more_paths
    assert "gate" in commands  # the regression gate, through make bench-pr
    assert commands and commands <= set(cli.commands), (
        f"not sqlabench commands: {commands - set(cli.commands)}"
    )
    missing = sorted(p for p in paths if not (ROOT / p).is_file())
    assert not missing, f"scripts that do not exist: {missing}"


def test_actionlint_passes() -> None:
    binary = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        pytest.skip("actionlint is not installed (its PyPI wrapper downloads it at build time)")
    done = subprocess.run(
        [binary, "-no-color", str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
