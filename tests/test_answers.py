"""Answers name a winner only when the interval of the ratio clears the tie band."""

from __future__ import annotations

from sqlabench import results, summary


def bench(process_medians: list[float], **info: object) -> results.BenchmarkResult:
    extra = {
        **info,
        "pass_medians": process_medians,
        "time": results.headline_time(process_medians),
    }
    rounds = sorted(process_medians)
    stats = {"median": rounds[len(rounds) // 2], "q1": rounds[0], "q3": rounds[-1]}
    return results.BenchmarkResult("b", "b", extra, stats)


def test_a_difference_inside_the_processes_noise_is_a_tie() -> None:
    """The published engines answer said "the async psycopg engine took 0.96× the sync
    one's time" from one process each: five processes that move ±8% each, 4% apart on the
    median, are a tie, and the answer says within how much."""
    sync = bench([100.0, 108.0, 93.0, 101.0, 97.0])
    async_ = bench([96.0, 92.0, 105.0, 90.0, 99.0])
    phrase = summary.took(async_, sync, "the async engine", "the sync one")
    assert phrase.startswith("the async engine and the sync one tie within ")
    within = int(phrase.rsplit(" ", 1)[1].rstrip("%"))
    # the interval's far end from 1, at least the band: no smaller than the 4% seen
    assert 4 <= within <= 20


def test_a_difference_every_process_shows_is_named_with_its_interval() -> None:
    sync = bench([100.0, 130.0, 90.0, 110.0, 95.0])
    # 20% slower in every process, whatever that process's own speed
    slower = bench([120.0, 156.0, 108.0, 132.0, 114.0])
    phrase = summary.took(slower, sync, "the async engine", "the sync one")
    assert phrase == "the async engine took 1.20× (1.20-1.20) the sync one's time"


def test_a_small_but_certain_difference_inside_the_band_is_still_a_tie() -> None:
    """2% slower in every process: certain, and too small to be worth a winner."""
    base = bench([100.0, 130.0, 90.0, 110.0, 95.0])
    slower = bench([102.0, 132.6, 91.8, 112.2, 96.9])
    assert not summary.differs(slower, base)
    assert summary.tie_phrase(slower, base) == "tie within 3%"


def test_with_one_process_the_rounds_spread_decides() -> None:
    """Old results (one process): no interval, so the rounds' interquartile range (at least
    5%) stands in for it, as before."""
    a = results.BenchmarkResult("a", "a", {}, {"median": 100.0, "q1": 95.0, "q3": 105.0})
    b = results.BenchmarkResult("b", "b", {}, {"median": 104.0, "q1": 99.0, "q3": 109.0})
    c = results.BenchmarkResult("c", "c", {}, {"median": 150.0, "q1": 145.0, "q3": 155.0})
    assert not summary.differs(b, a)
    assert summary.differs(c, a)
    assert summary.took(c, a, "c", "a") == "c took 1.50× a's time"
