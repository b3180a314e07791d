"""Ctrl-C during a run: it stops, keeps what was measured, and leaves no proxy behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from sqlabench.backends import POSTGRES_URL_ENV


def children_running(parent: int, marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and marker in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_saves_an_incomplete_result_and_stops_the_proxy(
    tmp_path: Path, scratch_database: str, stop: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != POSTGRES_URL_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlabench", "run", "engines", "--profile", "quick",
         "-b", "psycopg", "--rtt-ms", "1", "--out", str(tmp_path),
         "--postgres", scratch_database],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if "[ 3/" in line or not line:  # the third benchmark of the first pass is done
            break
    proxies = children_running(process.pid, "sqlabench.latency")
    assert proxies, "the run should have started its latency proxy: " + "".join(lines)
    process.send_signal(stop)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(lines) + rest
    assert "sqlabench: interrupted by " in rest and "what was measured is in" in rest
    assert "Traceback" not in rest
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert data["sqlabench"]["complete"] is False
    assert 1 <= len(data["benchmarks"]) < 16
    assert all(b["extra_info"]["verified"] for b in data["benchmarks"])
    for pid in proxies:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
