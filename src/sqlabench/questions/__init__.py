"""The questions: one module each, a unit from cases to answer.

A question module is a pytest module that `sqlabench run` hands to pytest-benchmark. It
declares, at its top level:

- a docstring whose first line is the question, and `QUESTION` (its name, as its benchmarks
  record it in `extra_info["question"]`);
- `PROFILES` (its sizes per profile), its cases and one or more `test_*` benchmarks that measure
  an operation, verify the work and record their counts (see `sqlabench.api`), through `INFO`,
  the typed record (a TypedDict) of what they write into `extra_info`;
- `TITLE`, the question as a heading, and three readers of a result file: `tables(result)`,
  `figures(result)` (chart stems with their figures) and `answer(result)` (one sentence). The
  tables, charts and report are loops over these, so a question is one module.

The built-in questions live in this package (so an installed sqlabench runs them as a checkout
does); installed packages add theirs through the `sqlabench.questions` entry point group (name =
the question, value = its module); and a user's own module is named by path:
`sqlabench run path/to/my_question.py`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

from sqlabench.errors import SqlabenchError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sqlabench.results import ResultFile
    from sqlabench.summary import Table

ENTRY_POINT_GROUP = "sqlabench.questions"
PYTEST_INI = Path(__file__).with_name("pytest.ini")
"""The pytest settings of every run, so a user's own pytest configuration never applies."""
PROFILES: dict[str, str] = {
    "smoke": "tiny data and a few rounds: checks that everything runs (numbers mean little)",
    "quick": "small data, short timings: minutes for everything (make bench)",
    "full": "the published sizes and longer timings",
}
PRESENTATION = ("TITLE", "tables", "figures", "answer")
"""What a question module declares besides its benchmarks, for tables, charts and report."""
DEFAULT_RANK = 100
"""Where a question without its own `RANK` is listed: after the built-in ones."""


@dataclass(frozen=True)
class Question:
    name: str
    path: Path
    summary: str
    """The question, in one sentence (the module docstring's first line)."""
    module: str | None = None
    """The module to import it by; None for a user's file, imported by path."""
    rank: int = DEFAULT_RANK
    """Where it is listed, charted and reported: by rank, then name."""
    declared: frozenset[str] = frozenset()
    """The names its module defines at its top level."""

    def check_declares(self) -> None:
        """A one-line error naming what a question module lacks to be run and reported."""
        missing = [n for n in PRESENTATION if n not in self.declared]
        if len(missing) == len(PRESENTATION):
            missing = []  # no presentation at all: generic tables, no chart, no answer
        if not any(n.startswith("test_") for n in self.declared):
            missing.append("a test_* benchmark function")
        if missing:
            raise SqlabenchError(
                f"the question module {self.path} does not declare {', '.join(missing)} "
                "(see sqlabench.api)"
            )

    def source_hash(self) -> str:
        """A hash of what the module measures: its code less its presentation (TITLE, tables,
        figures, answer and what only they use) and its comments, so that redrawing a chart
        does not make two runs "not like for like"."""
        return hashlib.sha256(measured_source(self.path).encode()).hexdigest()[:16]

    @property
    def source(self) -> str:
        """How a result file names it, for a later `plot` or `report` to find it again: its
        module, or its file (relative to the directory the run ran in, when below it, so a
        published result names no home directory)."""
        if self.module:
            return self.module
        here = Path.cwd().resolve()
        return str(self.path.relative_to(here) if self.path.is_relative_to(here) else self.path)


@dataclass(frozen=True)
class Presentation:
    """A question's readers of a result file."""

    title: str
    tables: Callable[[ResultFile], list[Table]]
    figures: Callable[[ResultFile], list[tuple[str, Figure | None]]]
    answer: Callable[[ResultFile], str]


HARNESS_MODULES = (
    "measure", "counting", "plugin", "scenario", "backends", "models", "latency",
    # the worker processes, and the runner's TIMING and PROCESSES: how many values, from how
    # many processes, make a headline
    "worker", "runner",
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
    """Where the built-in question modules are (pytest's rootdir for every run)."""
    return Path(__file__).resolve().parent


def _literal(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value:
                try:
                    return ast.literal_eval(node.value)
                except ValueError:
                    return None
    return None


KEPT_NAMES = ("QUESTION", "PROFILES", "RANK", "pytest_generate_tests", "case")
"""Top-level names the harness reads from a question module besides its test_* functions."""


def measured_source(path: Path) -> str:
    """The module's code that runs while measuring: every top-level statement except the
    presentation, and except definitions (imports included) that only the presentation uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes: list[ast.stmt] = [node for node in tree.body if not _defines(node) & set(PRESENTATION)]
    while True:  # drop what nothing kept uses, until nothing more goes
        used = {
            name
            for node in nodes
            for child in ast.walk(node)
            for name in _names_used(child)
            if not isinstance(node, ast.Import | ast.ImportFrom)
        }
        kept: list[ast.stmt] = []
        for node in nodes:
            defined = _defines(node)
            if isinstance(node, ast.Import | ast.ImportFrom):
                aliases = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
                if aliases:
                    kept.append(_with_aliases(node, aliases))
            elif (
                not defined
                or defined & used
                or any(n.startswith("test_") or n in KEPT_NAMES for n in defined)
            ):
                kept.append(node)
        if [ast.dump(n) for n in kept] == [ast.dump(n) for n in nodes]:
            return "\n".join(ast.unparse(node) for node in nodes)
        nodes = kept


def _with_aliases(node: ast.Import | ast.ImportFrom, aliases: list[ast.alias]) -> ast.stmt:
    if isinstance(node, ast.Import):
        return ast.Import(names=aliases)
    return ast.ImportFrom(module=node.module, names=aliases, level=node.level)


def _names_used(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
        return {node.value}  # a name in a string annotation or a cast("Figure", ...)
    return set()


def _defines(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names: set[str] = set()
        for target in targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            names.update(e.id for e in elements if isinstance(e, ast.Name))
        return names
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


def read_question(path: Path, module: str | None = None) -> Question:
    """A question module's name, summary and rank, read from its source without importing it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise SqlabenchError(f"cannot read the question module {path}: {exc}") from None
    except SyntaxError as exc:
        raise SqlabenchError(f"{path}:{exc.lineno}: not valid Python: {exc.msg}") from None
    declared = _literal(tree, "QUESTION")
    doc = (ast.get_docstring(tree) or "").strip()
    rank = _literal(tree, "RANK")
    return Question(
        name=declared if isinstance(declared, str) else path.stem.removeprefix("test_"),
        path=path,
        summary=doc.splitlines()[0] if doc else path.stem,
        module=module,
        rank=rank if isinstance(rank, int) else DEFAULT_RANK,
        declared=frozenset(_top_level_names(tree)),
    )


def _top_level_names(tree: ast.Module) -> set[str]:
    return {name for node in tree.body for name in _defines(node)}


def _built_in() -> list[Question]:
    here = questions_dir()
    return [
        read_question(p, module=f"{__name__}.{p.stem}")
        for p in sorted(here.glob("*.py"))
        if not p.name.startswith("_")
    ]


BROKEN: dict[str, str] = {}
"""Installed questions left out, by entry point name, with why: one broken package must not
break every command; naming it (`sqlabench run NAME`) says why it cannot run."""


def _installed() -> list[Question]:
    found = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            found.append(_entry_question(entry))
        except SqlabenchError as problem:
            if entry.name not in BROKEN:
                print(f"sqlabench: warning: {problem}; left out", file=sys.stderr)
            BROKEN[entry.name] = str(problem)
    return found


def _entry_question(entry: importlib.metadata.EntryPoint) -> Question:
    try:
        spec = importlib.util.find_spec(entry.value)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise SqlabenchError(
            f"the installed question {entry.name!r} names the module {entry.value!r}, "
            "which cannot be found"
        )
    question = read_question(Path(spec.origin), module=entry.value)
    if question.name != entry.name:
        raise SqlabenchError(
            f"the installed question {entry.name!r} ({entry.value}) declares QUESTION = "
            f"{question.name!r}: the entry point's name must be the question's"
        )
    question.check_declares()
    return question


def from_path(raw: str | Path) -> Question:
    """A user's own question module, named by its path."""
    path = Path(raw)
    if path.suffix != ".py" or not path.is_file():
        raise SqlabenchError(f"no question module at {raw} (a .py file is expected)")
    question = read_question(path.resolve())
    question.check_declares()
    return question


def looks_like_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name


def discover(extra: Sequence[str | Path] = ()) -> dict[str, Question]:
    """Every question by name, in listing order: built in, installed, and the files in `extra`."""
    questions: dict[str, Question] = {}
    for question in [*_built_in(), *_installed(), *(from_path(p) for p in extra)]:
        known = questions.get(question.name)
        if known is not None and known.path != question.path:
            raise SqlabenchError(
                f"two question modules are named {question.name!r}: {known.path} and "
                f"{question.path}"
            )
        questions[question.name] = question
    return dict(sorted(questions.items(), key=lambda item: (item[1].rank, item[0])))


def resolve(names: list[str] | tuple[str, ...]) -> list[Question]:
    """The questions named (`all` or none: every built-in and installed one; a path: that
    module), or a one-line error for an unknown one."""
    known = discover([n for n in names if looks_like_path(n)])
    chosen: list[Question] = []
    if not names or "all" in names:
        # run in name order, as every earlier run did: result names and merges stay comparable
        chosen = sorted((q for q in known.values() if q.module), key=lambda q: q.name)
    for name in names:
        if name == "all":
            continue
        question = known[from_path(name).name] if looks_like_path(name) else known.get(name)
        if question is None and name in BROKEN:
            raise SqlabenchError(BROKEN[name])
        if question is None:
            raise SqlabenchError(
                f"unknown question {name!r} (choose from: all, {', '.join(known)}, or the path "
                "of a question module)"
            )
        if question not in chosen:
            chosen.append(question)
    return chosen


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise SqlabenchError(f"unknown profile {profile!r} (choose from: {', '.join(PROFILES)})")
    return profile


# --- presenting: a question's tables, charts and answer -----------------------------------------


def load(question: Question) -> ModuleType:
    """The question's module, imported (once per process: pytest may have imported it)."""
    if question.module:
        return importlib.import_module(question.module)
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == question.path:  # type: ignore[arg-type]
            return module
    name = f"sqlabench_question_{question.name}"
    spec = importlib.util.spec_from_file_location(name, question.path)
    if spec is None or spec.loader is None:
        raise SqlabenchError(f"cannot import the question module {question.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # its own directory importable, as pytest makes it when it runs the module
    sys.path.insert(0, str(question.path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SqlabenchError(
            f"the question module {question.path} failed to import: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.path.remove(str(question.path.parent))
    return module


def presentation(question: Question) -> Presentation | None:
    """The question's tables, figures and answer (None: it declares none of them), or a
    one-line error naming what is missing."""
    module = load(question)
    missing = [attr for attr in PRESENTATION if not hasattr(module, attr)]
    if len(missing) == len(PRESENTATION):
        return None
    if missing:
        raise SqlabenchError(
            f"the question module {question.path} does not declare {', '.join(missing)} "
            "(see sqlabench.api)"
        )
    return Presentation(
        title=str(module.TITLE),
        tables=cast("Callable[[ResultFile], list[Table]]", module.tables),
        figures=cast("Callable[[ResultFile], list[tuple[str, Figure | None]]]", module.figures),
        answer=cast("Callable[[ResultFile], str]", module.answer),
    )


def recorded(names: Sequence[str], sources: dict[str, str]) -> list[Question]:
    """The questions of result files, in listing order: each found by name among the known
    ones, else where the run recorded its module (a file a user ran by path, relative to the
    directory the run ran in). A question found nowhere, or whose file no longer reads as a
    question module, is left out: its benchmarks still show in every generic view."""
    known = {q.name: q for q in [*_built_in(), *_installed()]}
    found = [known[name] for name in names if name in known]
    for name, source in sources.items():
        if name not in names or name in known or not looks_like_path(source):
            continue
        try:
            question = from_path(source)
        except SqlabenchError:
            continue
        if question.name == name:
            found.append(question)
    return sorted(found, key=lambda q: (q.rank, q.name))


def in_results(
    results: Sequence[ResultFile],
) -> list[tuple[str, ResultFile | None, Presentation | None]]:
    """Every question known here or found in `results`, in listing order, with the newest of
    the results that has its benchmarks (None: no data) and its presentation (None: its module
    is not to be found here, so only generic views can show it)."""
    names = {b.question for r in results for b in r.benchmarks}
    sources: dict[str, str] = {}
    for result in sorted(results, key=lambda r: r.info.started):
        sources.update(result.info.question_sources)
    known = {q.name: q for q in recorded(sorted(names), sources)}
    for question in discover().values():
        known.setdefault(question.name, question)
    ordered = sorted(known.values(), key=lambda q: (q.rank, q.name))
    out: list[tuple[str, ResultFile | None, Presentation | None]] = []
    for name in [q.name for q in ordered] + sorted(names - known.keys()):
        having = [r for r in results if any(b.question == name for b in r.benchmarks)]
        newest = max(having, key=lambda r: r.info.started) if having else None
        shown = presentation(known[name]) if name in known and newest is not None else None
        out.append((name, newest, shown))
    return out
