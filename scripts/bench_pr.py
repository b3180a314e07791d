"""The regression gate: base and head benchmarked in turn, pass by pass, then compared.

    .venv/bin/python scripts/bench_pr.py --base main [--passes 3] [--profile quick]
        [--out results/pr] [--threshold PCT] [--question NAME ...] [--keep-worktree]
        [--no-instructions]
        [-- more `sqlabench run` options, e.g. -b sqlite -k engines]

The base side is REF checked out in a temporary git worktree with its own venv (`pip install
-e`); the head side is this checkout, run by the sqlabench of the Python running this script.
The two run alternately, base, head, base, head, ... one pass each, so a shared machine's
drift lands on both sides alike. Each side's passes are merged (`sqlabench merge`, keeping each
pass's median) and compared (`sqlabench compare`). Benchmarks flagged slower are run once more
on both sides, interleaved again, merged in and compared again: only what is still flagged
fails. A benchmark that fails on head but not on base fails the gate too. The last pass of
each side also runs the counting pass (`run --instructions`): a benchmark whose
instructions, Python calls, statements or rows grew is a regression whatever its wall time.

Writes OUT/base/ and OUT/head/ (one result per pass), OUT/base-merged/ and OUT/head-merged/,
OUT/compare.md (also appended to $GITHUB_STEP_SUMMARY when set), OUT/compare.json and OUT/logs/.
Exit status: 0 no regression, 1 a regression, 2 bad input (one line), 130 interrupted. Merging
and comparing use this checkout's sqlabench, so the base only needs `sqlabench run`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("base", "head")
EXIT_BAD_INPUT = 2
SET_HERE = ("--out", "--repeat", "--profile", "-p", "--instructions")
"""`sqlabench run` options this script sets itself; they may not follow `--`."""
IDENT = re.compile(r"[\w:+\-.\[\]\\/]+")
"""The characters of one identifier in a pytest -k expression (_pytest/mark/expression.py)."""
KEYWORDS = frozenset({"and", "or", "not"})


class BadInput(Exception):
    """Said in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{message} (see: {self.prog} --help)")


@dataclass
class Options:
    base: str
    passes: int
    profile: str
    out: Path
    threshold: float | None
    questions: list[str]
    keep_worktree: bool
    extra: list[str] = field(default_factory=list)
    instructions: bool = True


def parse_args(argv: Sequence[str]) -> Options:
    """Our options before `--`, `sqlabench run` options after it."""
    ours, extra = list(argv), []
    if "--" in ours:
        ours, extra = ours[: ours.index("--")], ours[ours.index("--") + 1 :]
    parser = _Parser(prog="bench_pr.py", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--base", required=True, metavar="REF", help="git ref to compare with")
    parser.add_argument("--passes", type=int, default=3, metavar="K", help="passes per side")
    parser.add_argument("--profile", default="quick", help="sqlabench profile (default quick)")
    parser.add_argument("--out", default="results/pr", metavar="DIR", help="output directory")
    parser.add_argument("--threshold", type=float, metavar="PCT", help="compare's --threshold")
    parser.add_argument(
        "--question", "-q", action="append", dest="questions", metavar="NAME",
        help="question to run; repeat for several (default: all)",
    )  # fmt: skip
    parser.add_argument("--keep-worktree", action="store_true", help="leave the base checkout")
    parser.add_argument(
        "--no-instructions", dest="instructions", action="store_false",
        help="skip the counting pass (by default each side's last pass counts instructions "
        "and Python calls, the gate's deterministic evidence)",
    )  # fmt: skip
    ns = parser.parse_args(ours)
    if not 1 <= ns.passes <= 20:
        raise BadInput(f"--passes must be from 1 to 20, not {ns.passes}")
    for arg in extra:
        option = arg.split("=", 1)[0]
        if option in SET_HERE or (arg.startswith("-p") and not arg.startswith("--")):
            raise BadInput(f"{option} after -- is set by bench_pr.py itself; use its own options")
    return Options(
        base=ns.base, passes=ns.passes, profile=ns.profile, out=Path(ns.out).resolve(),
        threshold=ns.threshold, questions=ns.questions or ["all"],
        keep_worktree=ns.keep_worktree, extra=extra, instructions=ns.instructions,
    )  # fmt: skip


def interleave(passes: int) -> list[tuple[str, int]]:
    """The order of the passes: base 1, head 1, base 2, head 2, ..."""
    return [(side, number) for number in range(1, passes + 1) for side in SIDES]


CONFIRM_PASSES = 3
"""Fresh passes per side that confirm a benchmark flagged slower (3: enough for the
pass-level test compare uses)."""
REGRESSION_VERDICTS = ("failed", "more-work", "slower")


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


def k_selector(names: Iterable[str]) -> str:
    """A pytest -k expression that selects these benchmark ids.

    -k matches each identifier as a case-insensitive substring of a test's name, so an id made
    of identifier characters (`test_pools[asyncpg-pool1+0-c16]`: brackets included, so
    `...-1000]` does not also pick `...-10000]`) selects itself. An id with other characters is
    spelled as the AND of its identifier-character runs, which selects it and at worst a few
    more: harmless for a re-run.
    """
    clauses = []
    for name in dict.fromkeys(names):
        tokens = [t for t in IDENT.findall(name) if t not in KEYWORDS]
        if not tokens:
            raise BadInput(f"cannot select the benchmark {name!r} with a -k expression")
        clauses.append(tokens[0] if len(tokens) == 1 else f"({' and '.join(tokens)})")
    if not clauses:
        raise BadInput("no benchmark to select")
    return " or ".join(clauses)


def flagged(comparison: dict[str, Any], verdicts: Iterable[str] = ("slower",)) -> list[str]:
    """Names of the benchmarks `sqlabench compare --format json` gave one of these verdicts."""
    wanted = set(verdicts)
    return [c["name"] for c in comparison.get("changes", []) if c.get("verdict") in wanted]


def new_result(directory: Path, before: set[Path]) -> list[Path]:
    return sorted(set(directory.glob("*.json")) - before) if directory.is_dir() else []


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise BadInput(f"git {args[0]} failed: {_last_line(done.stderr)}")
    return done.stdout.strip()


@contextlib.contextmanager
def base_checkout(ref: str, keep: bool) -> Iterator[Path]:
    """REF in a new git worktree in a temporary directory, removed afterwards unless `keep`."""
    tmp = Path(tempfile.mkdtemp(prefix="sqlabench-base-"))
    tree = tmp / "tree"
    try:
        git("worktree", "add", "--detach", str(tree), ref)
        yield tree
    finally:
        if keep:
            print(f"bench_pr: kept the base worktree at {tree} and its venv at {tmp / 'venv'}")
        else:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=ROOT, capture_output=True, check=False,
            )  # fmt: skip
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True, check=False)


def install_base(tree: Path, ref: str, logs: Path) -> list[str]:
    """A venv beside the worktree with the base installed; the command that runs its CLI."""
    pyproject = tree / "pyproject.toml"
    if not pyproject.is_file() or "sqlabench" not in pyproject.read_text(encoding="utf-8"):
        raise BadInput(f"the base {ref} has no sqlabench command line (no pyproject.toml for it)")
    venv = tree.parent / "venv"
    log = logs / "base-install.log"
    print(f"bench_pr: installing the base ({ref}) into {venv} ...", flush=True)
    with log.open("w", encoding="utf-8") as fh:
        for step in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
             # the embedded server is an extra since 5126284: without it a base run with no
             # PostgreSQL URL fails (pip only warns about the extra on an older base)
             "--quiet", "-e", f"{tree}[embedded]"],
        ):  # fmt: skip
            if subprocess.run(step, stdout=fh, stderr=subprocess.STDOUT, cwd=tree).returncode:
                raise BadInput(f"cannot install the base {ref} into a venv (see {log})")
    command = [str(venv / "bin" / "sqlabench")]
    done = subprocess.run(
        [*command, "run", "--help"], capture_output=True, text=True, cwd=tree, check=False
    )
    missing = [o for o in ("--out", "--profile", "-k") if o not in done.stdout]
    if done.returncode != 0 or missing:
        raise BadInput(
            f"the base {ref} has no usable `sqlabench run` (missing: "
            f"{', '.join(missing) or 'the command'}); pick a newer base"
        )
    return command


def counts_instructions(command: list[str], cwd: Path) -> bool:
    """Whether this side's `sqlabench run` has the counting pass (older bases do not)."""
    done = subprocess.run(
        [*command, "run", "--help"], capture_output=True, text=True, cwd=cwd, check=False
    )
    return "--instructions" in done.stdout


def head_command() -> list[str]:
    return [sys.executable, "-m", "sqlabench"]


@dataclass
class Side:
    command: list[str]
    cwd: Path
    files: list[Path] = field(default_factory=list)
    files_before_confirmation: list[Path] = field(default_factory=list)
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
    written = new_result(out, before)
    if code == 130:
        raise KeyboardInterrupt
    if code not in (0, 1) or len(written) != 1:
        message = _last_line(log.read_text(encoding="utf-8", errors="replace"))
        raise BadInput(f"sqlabench run exited {code}: {message} (log: {log})")
    return code, written[0]


def sqlabench(*args: str) -> subprocess.CompletedProcess[str]:
    """This checkout's sqlabench; exit 2 (bad input) becomes BadInput with its message."""
    done = subprocess.run([*head_command(), *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode not in (0, 1):
        raise BadInput(_last_line(done.stderr).removeprefix("sqlabench: error: "))
    return done


def merge(files: list[Path], out: Path) -> Path:
    done = sqlabench("merge", *map(str, files), "--out", str(out))
    wrote = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    if done.returncode or not wrote:
        raise BadInput(f"sqlabench merge failed: {_last_line(done.stderr)}")
    return Path(wrote[-1].removeprefix("wrote "))


def compare(base: Path, head: Path, threshold: float | None, output: str) -> tuple[int, str]:
    limit = [] if threshold is None else ["--threshold", f"{threshold:g}"]
    done = sqlabench("compare", str(base), str(head), "--format", output, *limit)
    return done.returncode, done.stdout


def failed_benchmarks(path: Path) -> set[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(f.get("benchmark")) for f in data.get("sqlabench", {}).get("failures", [])}


def gate(argv: Sequence[str]) -> int:
    opts = parse_args(argv)
    if importlib.util.find_spec("sqlabench") is None:
        raise BadInput(f"{sys.executable} has no sqlabench; run this with .venv/bin/python")
    from sqlabench import questions, results
    from sqlabench.errors import SqlabenchError

    try:
        questions.check_profile(opts.profile)
        results.check_writable_dir(opts.out)
    except SqlabenchError as exc:
        raise BadInput(str(exc)) from None
    try:
        base_sha = git("rev-parse", "--verify", "--quiet", f"{opts.base}^{{commit}}")
    except BadInput:
        raise BadInput(f"unknown git ref {opts.base!r} (for --base)") from None
    head_sha = git("rev-parse", "HEAD")[:12]
    if git("status", "--porcelain", "--untracked-files=no"):
        head_sha += " with uncommitted changes"
    logs = opts.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run_args = [*opts.questions, "--profile", opts.profile, *opts.extra]
    head = Side(head_command(), ROOT)
    with base_checkout(base_sha, opts.keep_worktree) as tree:
        base = Side(install_base(tree, opts.base, logs), tree)
        sides = {"base": base, "head": head}

        # the last pass of each side also counts (run --instructions): the counts are the
        # gate's deterministic evidence; both sides or neither, so they always compare
        counted = opts.instructions and all(
            counts_instructions(s.command, s.cwd) for s in sides.values()
        )
        if opts.instructions and not counted:
            print("bench_pr: the base has no counting pass (run --instructions); gating on "
                  "database work and interleaved wall time only", flush=True)  # fmt: skip

        def one_round(label: str, schedule: list[tuple[str, int]], args: list[str]) -> None:
            for index, (name, number) in enumerate(schedule, 1):
                side = sides[name]
                print(f"bench_pr: {label} [{index}/{len(schedule)}] {name} pass {number}:",
                      end=" ", flush=True)  # fmt: skip
                started = time.monotonic()
                log = logs / f"{name}-{label}-{number}.log"
                count = counted and label == "passes" and number == opts.passes
                pass_args = [*args, "--instructions"] if count else args
                code, path = run_pass(side, pass_args, opts.out / name, log)
                side.files.append(path)
                failed = failed_benchmarks(path)
                side.failed |= failed
                status = f"{len(failed)} benchmark(s) failed" if code else "ok"
                print(f"{status} in {time.monotonic() - started:.0f} s -> {path}", flush=True)

        print(f"bench_pr: base {opts.base} ({base_sha[:12]}) vs head ({head_sha}), "
              f"{opts.passes} interleaved pass(es) per side", flush=True)  # fmt: skip
        one_round("passes", interleave(opts.passes), run_args)
        merged = {name: merge(s.files, opts.out / f"{name}-merged") for name, s in sides.items()}
        code, text = compare(merged["base"], merged["head"], opts.threshold, "json")
        first = json.loads(text)
        slower = flagged(first)
        rerun = ""
        confirmation: dict[str, Any] | None = None
        confirm_md = ""
        if slower:
            print(f"bench_pr: {len(slower)} benchmark(s) flagged slower; confirming them with "
                  f"{CONFIRM_PASSES} fresh passes per side, ABBA", flush=True)  # fmt: skip
            for s in sides.values():
                s.files_before_confirmation = list(s.files)
            one_round("confirm", confirmation_order(CONFIRM_PASSES),
                      [*run_args, "-k", k_selector(slower)])  # fmt: skip
            fresh = {
                n: merge(s.files[len(s.files_before_confirmation):],
                         opts.out / f"{n}-confirmation")
                for n, s in sides.items()
            }  # fmt: skip
            _, confirm_text = compare(fresh["base"], fresh["head"], opts.threshold, "json")
            confirmation = json.loads(confirm_text)
            (opts.out / "confirmation.json").write_text(confirm_text, encoding="utf-8")
            _, confirm_md = compare(fresh["base"], fresh["head"], opts.threshold, "markdown")
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
    (opts.out / "compare.json").write_text(json.dumps(first, indent=2), encoding="utf-8")
    _, markdown = compare(merged["base"], merged["head"], opts.threshold, "markdown")
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
    report = opts.out / "compare.md"
    report.write_text(markdown, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    print(markdown, end="")
    print(f"bench_pr: wrote {report}; exit {code}")
    return code


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a cancelled CI job still removes the worktree


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    try:
        return gate(sys.argv[1:] if argv is None else argv)
    except BadInput as exc:
        print(f"bench_pr: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("bench_pr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
