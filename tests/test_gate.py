"""`sqlabench gate`, the parts that need no base-vs-head run: order, options, refusals, and the
arguments that re-run exactly the flagged benchmarks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT, run_cli
from sqlabench import gate
from sqlabench.cli import cli
from test_results import make_result


def test_passes_alternate_base_first() -> None:
    assert gate.interleave(3) == [
        ("base", 1), ("head", 1), ("base", 2), ("head", 2), ("base", 3), ("head", 3),
    ]  # fmt: skip
    assert gate.interleave(1) == [("base", 1), ("head", 1)]


def test_the_confirmation_alternates_which_side_goes_first() -> None:
    """ABBAAB: a side that always ran second would carry the drift of the run before it."""
    assert gate.confirmation_order(gate.CONFIRM_PASSES) == [
        ("base", 1), ("head", 1), ("head", 2), ("base", 2), ("base", 3), ("head", 3),
    ]  # fmt: skip


def test_the_verdict_on_a_flagged_benchmark_is_the_fresh_passes_alone() -> None:
    """The passes that flagged a benchmark are not evidence twice: its final verdict is the
    confirmation's, every other verdict the first comparison's."""
    first = {
        "changes": [
            {"name": "a", "verdict": "slower"},
            {"name": "b", "verdict": "slower"},
            {"name": "c", "verdict": "more-work"},
            {"name": "d", "verdict": "unchanged"},
        ]
    }
    confirmation = {
        "changes": [{"name": "a", "verdict": "slower"}, {"name": "b", "verdict": "unchanged"}]
    }
    assert gate.final_regressions(first, confirmation) == ["a", "c"]
    assert gate.final_regressions(first, None) == ["a", "b", "c"]


def test_only_slower_benchmarks_are_rerun() -> None:
    comparison = {
        "changes": [
            {"name": "a", "verdict": "slower"},
            {"name": "b", "verdict": "more-work"},  # counted work: a re-run cannot change it
            {"name": "c", "verdict": "faster"},
            {"name": "d", "verdict": "unchanged"},
        ]
    }
    assert gate.flagged(comparison) == ["a"]


def test_the_confirmation_reruns_the_flagged_ids_with_only(tmp_path: Path) -> None:
    """Only the flagged benchmarks' questions run, and --only picks the benchmarks; a base
    whose `run` has no --only runs those questions whole (compare keeps the flagged alone)."""
    data = make_result()
    [bench] = data["benchmarks"]
    flagged = bench["name"]
    merged = tmp_path / "head.json"
    merged.write_text(json.dumps(data))
    opts = gate.Options(base="main", profile="smoke", extra=["-b", "sqlite"])
    new, old = gate.Side(["new"], tmp_path), gate.Side(["old"], tmp_path, has_only=False)
    args = gate.confirmation_args([flagged], merged, opts, {"base": new, "head": new}, print)
    # one process per side and pass: the gate's interleaving samples the processes
    common = [bench["extra_info"]["question"], "--profile", "smoke", "--repeat", "1",
              "-b", "sqlite"]  # fmt: skip
    assert args == {"base": [*common, "--only", flagged], "head": [*common, "--only", flagged]}
    said: list[str] = []
    args = gate.confirmation_args([flagged], merged, opts, {"base": old, "head": new}, said.append)
    assert args == {"base": common, "head": [*common, "--only", flagged]}
    assert len(said) == 1 and "no --only" in said[0]


def test_a_users_question_file_is_rerun_by_its_path(tmp_path: Path) -> None:
    """The confirmation names the file the first passes ran, absolute, not the bare name
    (which neither side's `sqlabench run` would know)."""
    data = make_result(questions=["pagination"])
    data["benchmarks"][0]["extra_info"]["question"] = "pagination"
    flagged = data["benchmarks"][0]["name"]
    merged = tmp_path / "head.json"
    merged.write_text(json.dumps(data))
    example = ROOT / "examples" / "pagination.py"
    opts = gate.Options(
        base="main", profile="smoke", questions=[os.path.relpath(example)], out=tmp_path / "pr"
    )
    gate.check(opts)
    assert opts.questions == [str(example)]  # absolute: both sides run in other directories
    side = gate.Side(["new"], tmp_path)
    args = gate.confirmation_args([flagged], merged, opts, {"base": side, "head": side}, print)
    assert args["head"][0] == str(example) and args["head"][-2:] == ["--only", flagged]


def test_options_before_and_after_the_double_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[gate.Options] = []

    def fake_gate(opts: gate.Options, say: gate.Say) -> gate.Outcome:
        seen.append(opts)
        return gate.Outcome(0, "report\n", tmp_path / "compare.md")

    monkeypatch.setattr(gate, "run_gate", fake_gate)
    runner = CliRunner()
    done = runner.invoke(
        cli, ["gate", "--base", "main", "--out", str(tmp_path), "--", "-b", "sqlite"]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout == f"report\ngate: wrote {tmp_path / 'compare.md'}; exit 0\n"
    [opts] = seen
    assert (opts.base, opts.passes, opts.profile, opts.questions) == ("main", 3, "quick", ["all"])
    assert opts.extra == ["-b", "sqlite"] and opts.out == tmp_path
    assert opts.instructions and opts.threshold == 5.0 and not opts.keep_worktree
    done = runner.invoke(
        cli,
        ["gate", "--base", "x", "-q", "engines", "-q", "pools", "--passes", "1",
         "--no-instructions", "--threshold", "7.5", "--keep-worktree"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    opts = seen[-1]
    assert opts.questions == ["engines", "pools"] and opts.passes == 1 and opts.extra == []
    assert not opts.instructions and opts.threshold == 7.5 and opts.keep_worktree


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--passes", "2"], "Missing option '--base'"),
        (["--base", "main", "--passes", "0"], "--passes must be from 1 to 20"),
        (["--base", "main", "--", "--out", "x"], "--out after -- is set by sqlabench gate"),
        (["--base", "main", "--", "-pquick"], "-pquick after -- is set by sqlabench gate"),
        (
            ["--base", "main", "--", "--postgres", "postgresql://u:hunter2@db/x"],
            "--postgres after -- would write its URL into the gate's report",
        ),
        (["--base", "main", "--profile", "huge"], "unknown profile 'huge'"),
        (["--base", "no-such-ref-4f2a"], "unknown git ref 'no-such-ref-4f2a'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    """Nothing is written, and no password given on the command line is repeated."""
    out = tmp_path / "pr"
    if "--" in argv:
        at = argv.index("--")
        argv = [*argv[:at], "--out", str(out), *argv[at:]]
    else:
        argv = [*argv, "--out", str(out)]
    done = run_cli("gate", *argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("sqlabench: error: ") and message in line
    assert "hunter2" not in done.stdout + done.stderr
    assert not out.exists()
