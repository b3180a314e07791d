"""The questions: one module each in this package (`sqlabench/questions/<question>.py`).

A question module is a pytest module that `sqlabench run` hands to pytest-benchmark; its
docstring states the question, its `PROFILES` table holds the sizes per profile. They ship
inside the package, so an installed sqlabench (a wheel, pipx) runs them as a checkout does;
benchmarks/ holds thin pytest entry points for `pytest benchmarks -k ...`.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlabench.errors import SqlabenchError

BENCHMARKS_ENV = "SQLABENCH_BENCHMARKS"
"""A directory of `test_<question>.py` modules to run instead of the built-in questions."""
PYTEST_INI = Path(__file__).with_name("pytest.ini")
"""The pytest settings of every run, so a user's own pytest configuration never applies."""
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


HARNESS_MODULES = (
    "measure", "counting", "plugin", "scenario", "backends", "models", "latency",
)  # fmt: skip
"""The library modules every question's timed (or counted) path runs through (the latency
proxy: every number taken through `--rtt-ms` or a question's own latency variant)."""


def harness_hash() -> str:
    """A hash of the harness modules' sources, as `Question.source_hash` is of a question's."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for name in HARNESS_MODULES:
        digest.update((package / f"{name}.py").read_bytes())
    for family in sorted((package / "families").glob("*.py")):  # how each family connects
        digest.update(family.read_bytes())
    return digest.hexdigest()[:16]


def questions_dir() -> Path:
    """Where the question modules are: this package, or $SQLABENCH_BENCHMARKS."""
    configured = os.environ.get(BENCHMARKS_ENV)
    here = Path(configured) if configured else Path(__file__).resolve().parent
    if not here.is_dir():
        raise SqlabenchError(f"{BENCHMARKS_ENV}={here} is not a directory")
    return here


def _modules(directory: Path) -> list[Path]:
    if os.environ.get(BENCHMARKS_ENV):
        return sorted(directory.glob("test_*.py"))
    return sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))


def discover() -> dict[str, Question]:
    questions: dict[str, Question] = {}
    for path in _modules(questions_dir()):
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
