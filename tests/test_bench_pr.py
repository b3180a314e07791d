"""scripts/bench_pr.py, the parts that need no base-vs-head run: order, -k, options, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.expression import Expression

from conftest import load_script
from sqlabench import runner

bench_pr = load_script("bench_pr")

IDS = [
    "test_engines[sqlite-raw-pk_lookup]",
    "test_engines[sqlite-orm-pk_lookup]",
    "test_engines[asyncpg-orm-request-expire]",
    "test_bulk_insert[sqlite-raw_executemany-1000]",
    "test_bulk_insert[sqlite-raw_executemany-10000]",
    "test_pools[asyncpg-pool1+0-c16-timeout5ms]",
    "test_pools[asyncpg-pool1+0-c16]",
    "test_loading[psycopg-nested-selectinload-10x5]",
    "test_odd[a b(c)=d, 'e']",
    "test_odd[a b(c)=d, 'f']",
]


def selected(expression: str) -> list[str]:
    """What pytest -k would pick from IDS: identifiers are case-insensitive substrings."""
    compiled = Expression.compile(expression)

    def picks(name: str) -> bool:
        def matcher(ident: str, /, **kwargs: Any) -> bool:
            return ident.lower() in name.lower()

        return compiled.evaluate(matcher)

    return [name for name in IDS if picks(name)]


def test_passes_alternate_base_first() -> None:
    assert bench_pr.interleave(3) == [
        ("base", 1), ("head", 1), ("base", 2), ("head", 2), ("base", 3), ("head", 3),
    ]  # fmt: skip
    assert bench_pr.interleave(1) == [("base", 1), ("head", 1)]


@pytest.mark.parametrize(
    "wanted",
    [
        [IDS[0]],
        [IDS[3]],  # not also ...-10000]
        [IDS[6]],  # not also the timeout5ms one, which it is a prefix of
        [IDS[1], IDS[2], IDS[5], IDS[7]],
    ],
)
def test_the_k_selector_picks_exactly_the_flagged_ids(wanted: list[str]) -> None:
    expression = bench_pr.k_selector(wanted)
    runner.check_selection(expression)  # what `sqlabench run -k` accepts
    assert selected(expression) == wanted


def test_ids_with_characters_k_cannot_spell_still_select_themselves() -> None:
    expression = bench_pr.k_selector([IDS[8], IDS[0], IDS[0]])
    runner.check_selection(expression)
    # the quote and the letter after it cannot be spelled: its sibling comes along, no other
    assert selected(expression) == [IDS[0], IDS[8], IDS[9]]
    with pytest.raises(bench_pr.BadInput):
        bench_pr.k_selector(["(or) and"])


def test_the_confirmation_alternates_which_side_goes_first() -> None:
    """ABBAAB: a side that always ran second would carry the drift of the run before it."""
    assert bench_pr.confirmation_order(bench_pr.CONFIRM_PASSES) == [
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
    assert bench_pr.final_regressions(first, confirmation) == ["a", "c"]
    assert bench_pr.final_regressions(first, None) == ["a", "b", "c"]


def test_only_slower_benchmarks_are_rerun() -> None:
    comparison = {
        "changes": [
            {"name": "a", "verdict": "slower"},
            {"name": "b", "verdict": "more-work"},  # counted work: a re-run cannot change it
            {"name": "c", "verdict": "faster"},
            {"name": "d", "verdict": "unchanged"},
        ]
    }
    assert bench_pr.flagged(comparison) == ["a"]


def test_options_before_and_after_the_double_dash(tmp_path: Path) -> None:
    opts = bench_pr.parse_args(["--base", "main", "--out", str(tmp_path), "--", "-b", "sqlite"])
    assert (opts.base, opts.passes, opts.profile, opts.questions) == ("main", 3, "quick", ["all"])
    assert opts.extra == ["-b", "sqlite"] and opts.out == tmp_path
    opts = bench_pr.parse_args(["--base", "x", "-q", "engines", "-q", "pools", "--passes", "1"])
    assert opts.questions == ["engines", "pools"] and opts.passes == 1 and opts.extra == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--passes", "2"], "required: --base"),
        (["--base", "main", "--passes", "0"], "--passes must be from 1 to 20"),
        (["--base", "main", "--", "--out", "x"], "--out after -- is set by bench_pr.py"),
        (["--base", "main", "--", "-pquick"], "-pquick after -- is set by bench_pr.py"),
        (["--base", "main", "--profile", "huge"], "unknown profile 'huge'"),
        (["--base", "no-such-ref-4f2a"], "unknown git ref 'no-such-ref-4f2a'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pr"
    assert bench_pr.main([*argv, "--out", str(out)] if "--" not in argv else argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()
