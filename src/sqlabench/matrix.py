"""The dependency matrix: the same questions under several sets of requirements, compared.

Each SPEC is a set of requirement strings (`"sqlalchemy==2.0.58 asyncpg==0.30.0"`). For each
one a virtual environment is built once and cached (this checkout installed editable into it,
then the SPEC's requirements), every environment is built before any benchmark runs (a bad
SPEC fails in seconds, with pip's reason), and then the sets run interleaved, pass by pass in
ABBA order, as the gate runs base and head. Each set's passes are merged into one result
file, and every set is compared with the first, with the gate's own statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from sqlabench import compare, results, stopping
from sqlabench.errors import SqlabenchError

CACHE_ENV = "SQLABENCH_MATRIX_CACHE"


@dataclass(frozen=True)
class Spec:
    """One set of requirements: what the environment of one column of the matrix pins."""

    requirements: tuple[str, ...]

    @property
    def label(self) -> str:
        """A file-name-safe name: `sqlalchemy-2.0.58+psycopg-3.2.10`."""
        parts = (re.sub(r"[^A-Za-z0-9._-]+", "-", r).strip("-") for r in self.requirements)
        return "+".join(parts)

    @property
    def text(self) -> str:
        return " ".join(self.requirements)


def parse_spec(text: str) -> Spec:
    """A SPEC as given to `--with`, or a one-line error naming what is wrong with it."""
    requirements = tuple(text.split())
    if not requirements:
        raise SqlabenchError("--with needs at least one requirement, e.g. 'sqlalchemy==2.0.58'")
    for requirement in requirements:
        try:
            Requirement(requirement)
        except InvalidRequirement as exc:
            raise SqlabenchError(f"--with {text!r}: not a requirement: {exc}") from None
    return Spec(requirements)


def checkout_root() -> Path:
    """The sqlabench checkout this process runs from (the matrix installs it into each env)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "sqlabench").is_dir():
        raise SqlabenchError(
            "sqlabench matrix runs from a checkout of sqlabench (pip install -e .)"
        )
    return root


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "sqlabench" / "matrix"


def env_dir(spec: Spec, root: Path) -> Path:
    """One cached environment per SPEC, Python version, checkout and its declared dependencies.

    The checkout is installed editable, so its code is always current; its dependencies are
    not, so a change to pyproject.toml builds a new environment.
    """
    project = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    key = "\n".join([*spec.requirements, platform.python_version(), str(root), project])
    return cache_root() / hashlib.sha256(key.encode()).hexdigest()[:16]


def ensure_env(spec: Spec, root: Path, say: Callable[[str], None]) -> Path:
    """The Python of the SPEC's environment, built (or rebuilt, if half built) when needed."""
    directory = env_dir(spec, root)
    marker = directory / "sqlabench-matrix.json"
    python = directory / "bin" / "python"
    if marker.is_file() and python.exists():
        return python
    if directory.exists():
        shutil.rmtree(directory)
    say(f"matrix: building the environment for {spec.text!r} in {directory}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    venv.create(directory, with_pip=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", f"{root}[embedded]", *spec.requirements],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        lines = done.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("ERROR:")]
        # pip's most telling line: what was not found, or which requirements conflict
        telling = [e for e in errors if "No matching distribution" in e or "Cannot install" in e]
        reason = (telling or errors or lines or [f"exit {done.returncode}"])[0][:300]
        raise SqlabenchError(f"--with {spec.text!r}: pip could not install it: {reason}")
    marker.write_text(json.dumps({"requirements": list(spec.requirements)}) + "\n")
    return python


@dataclass(frozen=True)
class MatrixOutcome:
    results: tuple[Path, ...]
    """One merged result file per SPEC, in the order given."""
    comparisons: tuple[compare.Comparison, ...]
    """Each SPEC after the first, compared with the first."""
    compare_json: Path
    compare_md: Path
    charts: tuple[Path, ...]
    failures: dict[str, int]
    """Failed benchmarks per SPEC (those with any): a version that breaks one is a finding."""

    @property
    def regressions(self) -> int:
        return sum(len(c.regressions) for c in self.comparisons)

    @property
    def missing(self) -> int:
        """Benchmarks that ran under one SPEC but not under another."""
        return sum(len(c.only_baseline) + len(c.only_current) for c in self.comparisons)

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.failures or self.missing)


def interleaved(count: int, passes: int) -> list[tuple[int, int]]:
    """(pass, spec index) in ABBA order: drift over the session lands on every set alike."""
    order: list[tuple[int, int]] = []
    for number in range(passes):
        indexes = range(count) if number % 2 == 0 else reversed(range(count))
        order.extend((number + 1, i) for i in indexes)
    return order


def run_matrix(
    question_names: Sequence[str],
    spec_texts: Sequence[str],
    run_args: Sequence[str],
    out_dir: str | Path,
    passes: int = 2,
    threshold: float = 0.05,
    say: Callable[[str], None] = print,
    env: dict[str, str] | None = None,
) -> MatrixOutcome:
    """Build every SPEC's environment, run the questions in each, merge, compare, write."""
    specs = [parse_spec(text) for text in spec_texts]
    if len(specs) < 2:
        raise SqlabenchError(
            "sqlabench matrix needs two --with SPECs or more (the first is the base)"
        )
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise SqlabenchError(f"--with SPECs must differ: {', '.join(labels)}")
    if not 1 <= passes <= 20:
        raise SqlabenchError(f"--passes must be from 1 to 20, not {passes}")
    out = results.ensure_writable_dir(out_dir)
    root = checkout_root()
    pythons = [ensure_env(spec, root, say) for spec in specs]

    # this invocation's passes only: an earlier matrix into the same DIR is never merged in
    session = out / "passes" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for number, index in interleaved(len(specs), passes):
        spec, python = specs[index], pythons[index]
        say(f"matrix: pass {number}/{passes}, {spec.text}")
        where = session / spec.label / f"pass-{number}"
        # one process per pass: the interleaved passes are the matrix's samples
        command = [str(python), "-m", "sqlabench", "run", *question_names, "--repeat", "1",
                   *run_args]  # fmt: skip
        code, stderr = _run_child([*command, "--out", str(where)], env, session, say)
        lines = stderr.strip().splitlines()
        last = lines[-1] if lines else "(no output)"
        wrote = list(where.glob("*.json"))
        if code not in (0, 1) or not wrote or "internal error" in last:
            raise SqlabenchError(f"the run with {spec.text!r} stopped (exit {code}): {last}")

    merged_paths = []
    for spec in specs:
        files = sorted((session / spec.label).glob("pass-*/*.json"))
        merged = results.merge_files(files)
        merged_paths.append(results.write_new(merged, out, spec.label))
    loaded = [results.load(p) for p in merged_paths]
    comparisons = tuple(compare.compare(loaded[0], other, threshold) for other in loaded[1:])
    compare_json = out / "compare.json"
    compare_json.write_text(
        json.dumps(
            {
                "base": {"spec": specs[0].text, "result": merged_paths[0].name},
                "comparisons": [
                    {"spec": s.text, "result": p.name, **c.to_json()}
                    for s, p, c in zip(specs[1:], merged_paths[1:], comparisons, strict=True)
                ],
            },
            indent=2,
        )
        + "\n"
    )
    compare_md = out / "compare.md"
    compare_md.write_text(
        "".join(
            f"## {s.text} against {specs[0].text}\n\n{compare.markdown(c)}\n"
            for s, c in zip(specs[1:], comparisons, strict=True)
        )
    )
    charts = _charts(specs, loaded, comparisons, out)
    failures = {
        s.label: len(r.info.failures) for s, r in zip(specs, loaded, strict=True) if r.info.failures
    }
    return MatrixOutcome(
        tuple(merged_paths), comparisons, compare_json, compare_md, charts, failures
    )


def _run_child(
    command: list[str], env: dict[str, str] | None, session: Path, say: Callable[[str], None]
) -> tuple[int, str]:
    """Run one pass; on a stop signal, hand it to the run and wait for it to save and stop."""
    child_env = {**os.environ, **(env or {})}
    process = subprocess.Popen(
        command, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = process.communicate()
    except KeyboardInterrupt:
        with stopping.stops_held():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the run saves what it measured, exits
            process.communicate()
            say(f"matrix: interrupted; the passes that finished are in {session}")
        raise
    return process.returncode, stderr


def _charts(
    specs: Sequence[Spec],
    loaded: Sequence[results.ResultFile],
    comparisons: Sequence[compare.Comparison],
    out: Path,
) -> tuple[Path, ...]:
    from sqlabench import plot

    written: list[Path] = []
    for spec, current, comparison in zip(specs[1:], loaded[1:], comparisons, strict=True):
        figure = plot.compare_figure(comparison, f"{spec.text} vs {specs[0].text}")
        if figure is not None:
            written += plot.save_figure(figure, current, out, f"compare-{spec.label}")
    return tuple(written)
