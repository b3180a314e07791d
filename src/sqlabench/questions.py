"""Questions are discovered by convention: `benchmarks/test_<question>.py`, one per question.

The module's docstring states the question; its `PROFILES` table holds the sizes per profile.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlabench.errors import SqlabenchError

BENCHMARKS_ENV = "SQLABENCH_BENCHMARKS"
PROFILES: dict[str, str] = {
    "smoke": "tiny data and a few rounds: checks that everything runs (numbers mean little)",
    "quick": "small data, short timings: minutes for everything (make bench)",
    "full": "the published sizes and longer timings",
}


@dataclass(frozen=True)
class Question:
    name: str
    path: Path
    summary: str

    def source_hash(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def benchmarks_dir() -> Path:
    """Where the scenario modules are: $SQLABENCH_BENCHMARKS, or the checkout's benchmarks/."""
    configured = os.environ.get(BENCHMARKS_ENV)
    here = Path(configured) if configured else Path(__file__).resolve().parents[2] / "benchmarks"
    if not here.is_dir():
        raise SqlabenchError(
            f"cannot find the benchmark modules at {here}: install sqlabench from its checkout "
            f"(pip install -e .) or set {BENCHMARKS_ENV}"
        )
    return here


def discover() -> dict[str, Question]:
    questions: dict[str, Question] = {}
    for path in sorted(benchmarks_dir().glob("test_*.py")):
        name = path.stem.removeprefix("test_")
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        questions[name] = Question(name, path, doc.strip().splitlines()[0] if doc else name)
    return questions


def resolve(names: list[str] | tuple[str, ...]) -> list[Question]:
    """The questions named (`all` or none: every one), or a one-line error for an unknown one."""
    known = discover()
    if not names or "all" in names:
        return list(known.values())
    chosen = []
    for name in names:
        if name not in known:
            raise SqlabenchError(
                f"unknown question {name!r} (choose from: all, {', '.join(known)})"
            )
        if known[name] not in chosen:
            chosen.append(known[name])
    return chosen


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise SqlabenchError(f"unknown profile {profile!r} (choose from: {', '.join(PROFILES)})")
    return profile
