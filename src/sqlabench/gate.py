"""The regression gate (`sqlabench gate`): base and head benchmarked in turn, pass by pass,
then compared.

The base side is a git ref checked out in a temporary git worktree with its own venv (`pip
install -e`); the head side is this checkout, run by the sqlabench of the running Python. The
two run alternately, base, head, base, head, ... one pass each, so a shared machine's drift
lands on both sides alike. Each side's passes are merged (keeping each pass's median) and
compared with `sqlabench compare`'s rules. Benchmarks flagged slower are run again on both
sides (`run --only`), in fresh passes interleaved ABBA, and only what those passes flag again
stands. A benchmark that fails on head but not on base fails the gate too. The last pass of
each side also runs the counting pass (`run --instructions`): a benchmark whose instructions,
Python calls, statements or rows grew is a regression whatever its wall time.

Writes OUT/base/ and OUT/head/ (one result per pass), OUT/base-merged/ and OUT/head-merged/,
OUT/compare.md (also appended to $GITHUB_STEP_SUMMARY when set), OUT/compare.json and
OUT/logs/. Merging and comparing use this checkout's sqlabench, so the base only needs
`sqlabench run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlabench import compare, files, questions, results
from sqlabench.embedded import POSTGRES_URL_ENV
from sqlabench.errors import SqlabenchError
from sqlabench.masking import mask_text

SIDES = ("base", "head")
SET_HERE = ("--out", "--repeat", "--profile", "-p", "--instructions")
"""`sqlabench run` options the gate sets itself; they may not follow `--`."""
CONFIRM_PASSES = 3
"""Fresh passes per side that confirm a benchmark flagged slower (3: enough for the
pass-level test compare uses)."""
REGRESSION_VERDICTS = ("failed", "more-work", "slower")
DEFAULT_THRESHOLD = 5.0
"""Percent: `sqlabench compare`'s default."""

Say = Callable[[str], None]


@dataclass
class Options:
    base: str
    passes: int = 3
    profile: str = "quick"
    out: Path = Path("results/pr")
    threshold: float = DEFAULT_THRESHOLD
    """Percent, as `sqlabench compare --threshold`."""
    questions: list[str] = field(default_factory=lambda: ["all"])
    keep_worktree: bool = False
    extra: list[str] = field(default_factory=list)
    """`sqlabench run` options for both sides (what follows `--`)."""
    instructions: bool = True


@dataclass(frozen=True)
class Outcome:
    code: int
    """0 no regression, 1 a regression or a benchmark failing on head only."""
    markdown: str
    report: Path


def check(opts: Options) -> None:
    """Everything about the options that can be wrong, said before any work."""
    if not 1 <= opts.passes <= 20:
        raise SqlabenchError(f"--passes must be from 1 to 20, not {opts.passes}")
    for arg in opts.extra:
        option = arg.split("=", 1)[0]
        if option in SET_HERE or (arg.startswith("-p") and not arg.startswith("--")):
            raise SqlabenchError(
                f"{option} after -- is set by sqlabench gate itself; use its own options"
            )
        if option == "--postgres":
            # the arguments are written into compare.md, the job summary and both sides'
            # command lines: a server (and its password) is given through the environment
            raise SqlabenchError(
                f"--postgres after -- would write its URL into the gate's report; set "
                f"${POSTGRES_URL_ENV} instead (both sides read it, nothing writes it)"
            )
    # a user's own question file, named as both sides' runs (in other directories) find it
    opts.questions = [
        str(Path(q).resolve()) if questions.looks_like_path(q) else q for q in opts.questions
    ]
    questions.check_profile(opts.profile)
    results.check_writable_dir(opts.out)


def interleave(passes: int) -> list[tuple[str, int]]:
    """The order of the passes: base 1, head 1, base 2, head 2, ..."""
    return [(side, number) for number in range(1, passes + 1) for side in SIDES]


def confirmation_order(passes: int) -> list[tuple[str, int]]:
    """ABBAAB...: which side runs first alternates, so neither always follows the other."""
    order: list[tuple[str, int]] = []
    for number in range(1, passes + 1):
        pair = SIDES if number % 2 else tuple(reversed(SIDES))
        order += [(side, number) for side in pair]
    return order


def final_regressions(first: dict[str, Any], confirmation: dict[str, Any] | None) -> list[str]:
    """The gate's regressions: a benchmark flagged slower stands only if fresh passes of both
    sides (the confirmation) flag it again; every other verdict is the first comparison's."""
    confirmed = {c["name"]: c.get("verdict") for c in (confirmation or {}).get("changes", [])}
    out = []
    for change in first.get("changes", []):
        verdict = change.get("verdict")
        if verdict == "slower" and confirmation is not None:
            verdict = confirmed.get(change["name"], "unchanged")
        if verdict in REGRESSION_VERDICTS:
            out.append(change["name"])
    return out


def flagged(comparison: dict[str, Any], verdicts: Iterable[str] = ("slower",)) -> list[str]:
    """Names of the benchmarks a comparison (as JSON) gave one of these verdicts."""
    wanted = set(verdicts)
    return [c["name"] for c in comparison.get("changes", []) if c.get("verdict") in wanted]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def checkout_root() -> Path:
    """The git checkout the head side is: the one sqlabench is installed from (pip install
    -e), else the one the command runs in."""
    for start in (Path(__file__).resolve().parent, Path.cwd()):
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=start, capture_output=True, text=True, check=False,
        )  # fmt: skip
        root = Path(done.stdout.strip())
        if done.returncode == 0 and (root / "pyproject.toml").is_file():
            return root
    raise SqlabenchError("sqlabench gate compares git commits: run it in a git checkout of it")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SqlabenchError(f"git {args[0]} failed: {_last_line(done.stderr)}")
    return done.stdout.strip()


@contextlib.contextmanager
def base_checkout(root: Path, ref: str, keep: bool, say: Say) -> Iterator[Path]:
    """REF in a new git worktree in a temporary directory, removed afterwards unless `keep`."""
    tmp = Path(tempfile.mkdtemp(prefix="sqlabench-base-"))
    tree = tmp / "tree"
    try:
        git(root, "worktree", "add", "--detach", str(tree), ref)
        yield tree
    finally:
        if keep:
            say(f"gate: kept the base worktree at {tree} and its venv at {tmp / 'venv'}")
        else:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=root, capture_output=True, check=False,
            )  # fmt: skip
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)


def install_base(tree: Path, ref: str, logs: Path, say: Say) -> list[str]:
    """A venv beside the worktree with the base installed; the command that runs its CLI."""
    pyproject = tree / "pyproject.toml"
    if not pyproject.is_file() or "sqlabench" not in pyproject.read_text(encoding="utf-8"):
        raise SqlabenchError(
            f"the base {ref} has no sqlabench command line (no pyproject.toml for it)"
        )
    venv = tree.parent / "venv"
    log = logs / "base-install.log"
    say(f"gate: installing the base ({ref}) into {venv} ...")
    with log.open("w", encoding="utf-8") as fh:
        for step in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
             # the embedded server is an extra since 5126284: without it a base run with no
             # PostgreSQL URL fails (pip only warns about the extra on an older base)
             "--quiet", "-e", f"{tree}[embedded]"],
        ):  # fmt: skip
            if subprocess.run(step, stdout=fh, stderr=subprocess.STDOUT, cwd=tree).returncode:
                raise SqlabenchError(f"cannot install the base {ref} into a venv (see {log})")
    command = [str(venv / "bin" / "sqlabench")]
    done = subprocess.run(
        [*command, "run", "--help"], capture_output=True, text=True, cwd=tree, check=False
    )
    missing = [o for o in ("--out", "--profile", "-k") if o not in done.stdout]
    if done.returncode != 0 or missing:
        raise SqlabenchError(
            f"the base {ref} has no usable `sqlabench run` (missing: "
            f"{', '.join(missing) or 'the command'}); pick a newer base"
        )
    return command


def run_has(command: list[str], cwd: Path, option: str) -> bool:
    """Whether this side's `sqlabench run` has an option (older bases lack the newer ones)."""
    done = subprocess.run(
        [*command, "run", "--help"], capture_output=True, text=True, cwd=cwd, check=False
    )
    return option in done.stdout


def head_command() -> list[str]:
    return [sys.executable, "-m", "sqlabench"]


@dataclass
class Side:
    command: list[str]
    cwd: Path
    has_only: bool = True
    """Whether its `sqlabench run` has --only (a base older than it re-runs whole questions)."""
    failed: set[str] = field(default_factory=set)
    """Benchmarks that failed (error or verification) in any pass."""


def run_pass(side: Side, args: list[str], out: Path, log: Path) -> tuple[int, Path]:
    """One `sqlabench run` pass; its exit status (0 or 1) and the result file it wrote."""
    before = set(out.glob("*.json")) if out.is_dir() else set()
    with log.open("w", encoding="utf-8") as fh:
        code = subprocess.run(
            [*side.command, "run", *args, "--out", str(out)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=side.cwd, check=False,
        ).returncode  # fmt: skip
    written = sorted(set(out.glob("*.json")) - before) if out.is_dir() else []
    if code == 130:
        raise KeyboardInterrupt
    if code not in (0, 1) or len(written) != 1:
        message = _last_line(log.read_text(encoding="utf-8", errors="replace"))
        raise SqlabenchError(f"sqlabench run exited {code}: {message} (log: {log})")
    return code, written[0]


def merge(paths: list[Path], out: Path) -> Path:
    """Join one side's passes into one new result file in `out` (as `sqlabench merge`)."""
    data = results.merge_files(paths)
    return results.write_new(data, out, results.merged_stem(data))


def comparison(
    base: Path, head: Path, threshold: float, only: Sequence[str] | None = None
) -> compare.Comparison:
    """`sqlabench compare BASE HEAD`, of the benchmarks named in `only` if given."""
    before, after = results.load(base), results.load(head)
    if only is not None:
        wanted = set(only)
        before, after = (
            dataclasses.replace(r, benchmarks=tuple(b for b in r.benchmarks if b.name in wanted))
            for r in (before, after)
        )
    return compare.compare(before, after, threshold / 100)


def failed_benchmarks(path: Path) -> set[str]:
    return {str(f.get("benchmark")) for f in results.load(path).info.failures}


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def run_gate(opts: Options, say: Say) -> Outcome:
    """Run the gate; progress goes to `say`, one line at a time."""
    check(opts)
    root = checkout_root()
    try:
        base_sha = git(root, "rev-parse", "--verify", "--quiet", f"{opts.base}^{{commit}}")
    except SqlabenchError:
        raise SqlabenchError(f"unknown git ref {opts.base!r} (for --base)") from None
    head_sha = git(root, "rev-parse", "HEAD")[:12]
    if git(root, "status", "--porcelain", "--untracked-files=no"):
        head_sha += " with uncommitted changes"
    out = opts.out.resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # a gate pass is one process of each side, interleaved: the gate's own schedule samples
    # the processes (a run's default of several worker processes would pool them unpaired)
    run_args = [*opts.questions, "--profile", opts.profile, "--repeat", "1", *opts.extra]
    head = Side(head_command(), root)
    with base_checkout(root, base_sha, opts.keep_worktree, say) as tree:
        base_command = install_base(tree, opts.base, logs, say)
        base = Side(base_command, tree, has_only=run_has(base_command, tree, "--only"))
        sides = {"base": base, "head": head}

        # the last pass of each side also counts (run --instructions): the counts are the
        # gate's deterministic evidence; both sides or neither, so they always compare
        counted = opts.instructions and all(
            run_has(s.command, s.cwd, "--instructions") for s in sides.values()
        )
        if opts.instructions and not counted:
            say("gate: the base has no counting pass (run --instructions); gating on "
                "database work and interleaved wall time only")  # fmt: skip

        def one_round(
            label: str, schedule: list[tuple[str, int]], args: dict[str, list[str]]
        ) -> dict[str, list[Path]]:
            """Run the passes of `schedule`; each side's result files, in the order they ran."""
            written: dict[str, list[Path]] = {name: [] for name in SIDES}
            for index, (name, number) in enumerate(schedule, 1):
                side = sides[name]
                say(f"gate: {label} [{index}/{len(schedule)}] {name} pass {number} ...")
                started = time.monotonic()
                log = logs / f"{name}-{label}-{number}.log"
                count = counted and label == "passes" and number == opts.passes
                pass_args = [*args[name], "--instructions"] if count else args[name]
                code, path = run_pass(side, pass_args, out / name, log)
                written[name].append(path)
                failed = failed_benchmarks(path)
                side.failed |= failed
                status = f"{len(failed)} benchmark(s) failed" if code else "ok"
                say(f"gate: {label} [{index}/{len(schedule)}] {name} pass {number}: {status} "
                    f"in {time.monotonic() - started:.0f} s -> {path}")  # fmt: skip
            return written

        say(f"gate: base {opts.base} ({base_sha[:12]}) vs head ({head_sha}), "
            f"{opts.passes} interleaved pass(es) per side")  # fmt: skip
        passes = one_round("passes", interleave(opts.passes), dict.fromkeys(SIDES, run_args))
        merged = {name: merge(passes[name], out / f"{name}-merged") for name in SIDES}
        first_comparison = comparison(merged["base"], merged["head"], opts.threshold)
        first = first_comparison.to_json()
        slower = flagged(first)
        rerun = ""
        confirmation: dict[str, Any] | None = None
        confirm_md = ""
        if slower:
            say(f"gate: {len(slower)} benchmark(s) flagged slower; confirming them with "
                f"{CONFIRM_PASSES} fresh passes per side, ABBA")  # fmt: skip
            args = confirmation_args(slower, merged["head"], opts, sides, say)
            again = one_round("confirm", confirmation_order(CONFIRM_PASSES), args)
            fresh = {name: merge(again[name], out / f"{name}-confirmation") for name in SIDES}
            confirmed = comparison(fresh["base"], fresh["head"], opts.threshold, slower)
            confirmation = confirmed.to_json()
            files.write_atomic(out / "confirmation.json", _json(confirmation), overwrite=True)
            confirm_md = compare.markdown(confirmed)
            rerun = (
                f" {len(slower)} benchmark(s) flagged slower were confirmed or cleared by "
                f"{CONFIRM_PASSES} fresh passes per side, run ABBA (not the passes that "
                "flagged them)."
            )
        # a benchmark missing from head fails the gate too (compare's rule)
        regressions = final_regressions(first, confirmation) + [
            name for name in first.get("only_in_baseline", []) if name not in slower
        ]
        code = 1 if regressions else 0
    first["gate"] = {"regressions": regressions, "confirmed_by_fresh_passes": bool(slower)}
    files.write_atomic(out / "compare.json", _json(first), overwrite=True)
    markdown = compare.markdown(first_comparison)
    if confirmation is not None:
        cleared = [n for n in slower if n not in regressions]
        markdown += (
            f"\n#### Confirmation of the {len(slower)} flagged slower (fresh passes, ABBA)\n\n"
            f"Still slower: {len(slower) - len(cleared)}; cleared: {len(cleared)}.\n\n"
            + confirm_md
        )  # fmt: skip
    markdown += (
        f"\n**Gate: {len(regressions)} regression(s)**"
        + (f": {', '.join(f'`{n}`' for n in regressions)}" if regressions else "")
        + ".\n"
    )  # fmt: skip
    broken = sorted(head.failed - base.failed)
    if broken:
        code = 1
        markdown = (
            f"### sqlabench: **{len(broken)} benchmark(s) fail on head but not on base**\n\n"
            + "".join(f"- `{name}`\n" for name in broken) + "\n" + markdown
        )  # fmt: skip
    markdown += (
        f"\nBase `{opts.base}` ({base_sha[:12]}) vs head ({head_sha}): {opts.passes} "
        f"pass(es) per side, interleaved, `sqlabench run {shlex.join(run_args)}`.{rerun} "
        f"Merged results: `{merged['base'].name}` (base), `{merged['head'].name}` (head).\n"
    )
    markdown = mask_text(markdown)  # whatever a run option or error carried
    report = files.write_atomic(out / "compare.md", markdown, overwrite=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    return Outcome(code, markdown, report)


def confirmation_args(
    slower: list[str], head_merged: Path, opts: Options, sides: dict[str, Side], say: Say
) -> dict[str, list[str]]:
    """Each side's `sqlabench run` arguments that re-run exactly the flagged benchmarks.

    Only their questions run; `--only` picks the benchmarks. A base whose `run` has no
    `--only` runs those questions whole, and the comparison keeps the flagged ones alone.
    """
    by_name = {b.name: b.question for b in results.load(head_merged).benchmarks}
    # a question named by its file is re-run by that file, as the first passes ran it
    files_of = {
        questions.from_path(q).name: q for q in opts.questions if questions.looks_like_path(q)
    }
    flagged = dict.fromkeys(by_name[n] for n in slower if by_name.get(n))
    chosen = [files_of.get(name, name) for name in flagged] or opts.questions
    common = [*chosen, "--profile", opts.profile, "--repeat", "1", *opts.extra]
    only = [arg for name in slower for arg in ("--only", name)]
    args = {name: [*common, *only] if s.has_only else common for name, s in sides.items()}
    if not sides["base"].has_only:
        say(f"gate: the base's `sqlabench run` has no --only; it re-runs {' '.join(chosen)} "
            "whole and the comparison keeps the flagged benchmarks")  # fmt: skip
    return args
