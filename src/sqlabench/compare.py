"""Comparing two runs: which benchmarks do more work, or got slower or faster, and how sure.

The gate's first evidence is what the machine's noise cannot move. Any increase in the
database work an operation does (`statements`, `rows`, `rows_fetched`) is a regression.
With `run --instructions` on both sides, each operation's client instructions and Python
calls are compared too: an increase beyond what separate processes of the same code show
(`tolerance`, from measured A/A spread) is a regression, named with the counts.

Wall time is compared and reported for every benchmark, but it gates only where the test
can separate a change from this machine's 10-25% drift between processes: runs measured as
interleaved passes (their time spans overlap, as `sqlabench gate` makes them), each with
3 or more passes. Elsewhere a wall-time change is shown as `slower-ungated` and a warning.

Rounds measured in one pass share that pass's state of a shared machine (its load, clocks,
caches), so they are not independent evidence about a change: treating them as such (a
Mann-Whitney U over rounds) calls run-to-run drift a regression. The unit here is a block of
rounds measured together: a pass of `run --repeat K` (its rounds are in `pass_rounds`), or,
for a single pass, consecutive chunks of its rounds. Block i of the baseline is paired with
block i of the current run (interleaved passes sit side by side in time, so the pairing
cancels drift), and a paired t-test on the log ratio of block medians gives the p-value and
the 95% interval of the ratio. P-values are corrected for the many benchmarks compared at
once (Benjamini-Hochberg). A benchmark is slower only when the change is significant after
correction, its interval lies wholly above 1, and the ratio of medians is at least
1 + threshold; faster likewise.

Never touches a database; the result files are all it reads.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from scipy import special, stats

from sqlabench.errors import SqlabenchError
from sqlabench.results import BenchmarkResult, ResultFile, instant

ALPHA = 0.01
MIN_PASSES = 3
"""Passes a side needs before passes, rather than chunks of rounds, are the unit tested."""
CHUNKS = 5
"""Consecutive chunks a single pass's rounds are split into."""
MIN_FOR_POOLING = 8
"""Benchmarks needed before their shared drift and their spread are estimated together."""
COUNTED = ("statements", "rows", "rows_fetched")
"""Per-operation counts of database work: any increase is a regression."""
COUNTS = ("instructions", "py_calls")
"""Counts from the counting pass (`run --instructions`), compared within a tolerance."""
AA_COUNTS = "counts_aa.json"
"""The largest change between two counting passes of the same code, per count and
question/mode (shipped with the package; written by scripts/calibrate_counts.py from the A/A
pair whose full report is results/counts-aa.json)."""
TOLERANCE_MARGIN = 1.5
TOLERANCE_STEP = 0.005
"""A tolerance is the A/A spread times the margin, rounded up to the step (at least one
step): a change of an exact count (sync Python calls: 0 in A/A) beyond half a per cent is
real."""


@functools.cache
def aa_spread() -> dict[str, dict[str, float]]:
    """The measured A/A spread, per count and question/mode."""
    data = json.loads(resources.files("sqlabench").joinpath(AA_COUNTS).read_text())
    return {k: dict(v) for k, v in data["max_abs_change"].items()}


def tolerance(key: str, bench: BenchmarkResult) -> float:
    """How much `key` may move between processes of the same code, for this benchmark's
    question and mode (a group never measured takes the largest of its count)."""
    spread = aa_spread().get(key, {})
    seen = spread.get(f"{bench.question}/{bench.extra_info.get('mode')}")
    if seen is None:
        seen = max(spread.values(), default=0.0)
    steps = math.ceil(round(seen * TOLERANCE_MARGIN / TOLERANCE_STEP, 6))
    return max(1, steps) * TOLERANCE_STEP


VERDICTS = (
    "failed", "more-work", "slower", "slower-ungated",
    "less-work", "faster", "faster-ungated", "unchanged",
)  # fmt: skip
"""Every verdict, regressions first: failed (in the current run only), more-work (a count
grew), slower (interleaved wall time), slower-ungated (wall time where it cannot gate:
reported, never fails), then improvements."""
REGRESSION_VERDICTS = ("failed", "more-work", "slower")
IMPROVEMENT_VERDICTS = ("less-work", "faster")
RUN_FIELDS = (
    "rtt_ms", "python", "sqlalchemy", "machine", "injected_slowdown", "injected_work",
)  # fmt: skip


@dataclass(frozen=True)
class Change:
    name: str
    question: str
    backend: str
    baseline_median: float
    current_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    detectable: float
    """Half-width of the ratio's 95% interval: changes smaller than this are lost in noise."""
    verdict: str
    """One of `VERDICTS`."""
    reasons: tuple[str, ...] = ()
    unit: str = "pass"
    """What was paired and tested: passes of --repeat, or chunks of a single pass's rounds."""


@dataclass(frozen=True)
class Comparison:
    threshold: float
    changes: tuple[Change, ...]
    only_baseline: tuple[str, ...]
    only_current: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict in REGRESSION_VERDICTS)

    @property
    def improvements(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict in IMPROVEMENT_VERDICTS)

    @property
    def ungated(self) -> tuple[Change, ...]:
        """Wall-time changes seen where wall time cannot gate (runs not interleaved)."""
        return tuple(c for c in self.changes if c.verdict.endswith("-ungated"))

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "regressions": len(self.regressions),
            "improvements": len(self.improvements),
            "unchanged": len(self.changes) - len(self.regressions) - len(self.improvements),
            "warnings": list(self.warnings),
            "only_in_baseline": list(self.only_baseline),
            "only_in_current": list(self.only_current),
            # NaN (a failed benchmark has no current median) is not JSON: null instead
            "changes": [
                {
                    k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in asdict(c).items()
                }
                for c in self.changes
            ],
        }


def blocks(bench: BenchmarkResult) -> list[np.ndarray]:
    """The benchmark's rounds split into the blocks that were measured together."""
    data = np.asarray(bench.data or [bench.median], dtype=float)
    counts = bench.extra_info.get("pass_rounds")
    if (
        isinstance(counts, list)
        and len(counts) >= MIN_PASSES
        and all(isinstance(n, int) and n > 0 for n in counts)
        and sum(counts) == len(data)
    ):
        return np.split(data, np.cumsum(counts)[:-1])
    return [c for c in np.array_split(data, min(CHUNKS, len(data))) if len(c)]


def paired_log_ratios(base: BenchmarkResult, current: BenchmarkResult) -> tuple[np.ndarray, str]:
    """log(current / baseline) per pair of blocks, and the unit paired (pass or chunk);
    an empty array when both sides have passes but not the same number of them."""
    b_blocks, c_blocks = blocks(base), blocks(current)
    if has_passes(base) and has_passes(current):
        if len(b_blocks) != len(c_blocks):
            return np.array([]), "pass"
        b_logs = np.log([np.median(b) for b in b_blocks])
        return np.log([np.median(c) for c in c_blocks]) - b_logs, "pass"
    # single passes: chunk both sides alike, chunk i against chunk i (both in time order)
    n = min(len(b_blocks), len(c_blocks))
    b_chunks = np.array_split(np.concatenate(b_blocks), n)
    c_chunks = np.array_split(np.concatenate(c_blocks), n)
    return np.log(
        [np.median(c) / np.median(b) for b, c in zip(b_chunks, c_chunks, strict=True)]
    ), "chunk"


def remove_common_drift(differences: list[np.ndarray]) -> list[np.ndarray]:
    """Take out of each pass pair the drift every benchmark shared in it.

    A busy neighbour or a frequency change moves every benchmark of a pass alike. The median
    over benchmarks of pass pair i's log ratio, less its mean over the pairs, is that shared
    move; subtracting it leaves each benchmark's own change (its mean over pairs is kept, so
    a change of every benchmark still shows). Only where enough benchmarks share the pass.
    """
    longest = max((len(d) for d in differences), default=0)
    shared = []
    for i in range(longest):
        column = [d[i] for d in differences if len(d) > i]
        shared.append(float(np.median(column)) if len(column) >= MIN_FOR_POOLING else math.nan)
    known = [x for x in shared if math.isfinite(x)]
    if len(known) < 2:
        return differences
    level = float(np.mean(known))
    drift = np.array([x - level if math.isfinite(x) else 0.0 for x in shared])
    return [d - drift[: len(d)] for d in differences]


def prior_variance(variances: list[float], df: list[int]) -> tuple[float, float]:
    """The noise every benchmark's own variance is shrunk towards, and its weight in degrees
    of freedom: an empirical-Bayes prior fitted to all of them (Smyth 2004, limma's fitFDist).

    With 3 passes a benchmark's own variance has 2 degrees of freedom and a t-test on it has
    almost no power; borrowing the spread of the other benchmarks gives it many more.
    """
    pairs = [(v, d) for v, d in zip(variances, df, strict=True) if v > 0 and d > 0]
    if len(pairs) < MIN_FOR_POOLING:
        return 0.0, 0.0
    v = np.array([p[0] for p in pairs])
    d = np.array([p[1] for p in pairs], dtype=float)
    e = np.log(v) - special.digamma(d / 2) + np.log(d / 2)
    excess = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2)))
    if excess <= 0:
        d0 = math.inf
        return float(np.exp(np.mean(e))), d0
    d0 = 2 * _inverse_trigamma(excess)
    s0 = float(np.exp(np.mean(e) + special.digamma(d0 / 2) - np.log(d0 / 2)))
    return s0, d0


def _inverse_trigamma(x: float) -> float:
    """y with trigamma(y) = x, by Newton's method (Smyth's algorithm)."""
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def moderated_test(
    log_ratios: np.ndarray, prior: float, prior_df: float
) -> tuple[float, float, float]:
    """p-value and 95% interval of the ratio: a t-test on the mean log ratio whose variance
    is the benchmark's own, shrunk towards the prior (an ordinary t-test without one)."""
    n = len(log_ratios)
    mean = float(np.mean(log_ratios)) if n else 0.0
    if n < 2:
        return 1.0, float("nan"), float("nan")
    own = float(np.var(log_ratios, ddof=1))
    if math.isinf(prior_df):
        variance, df = prior, math.inf
    else:
        variance = (prior_df * prior + (n - 1) * own) / (prior_df + n - 1)
        df = prior_df + n - 1
    if variance == 0 or not math.isfinite(variance):
        # every block moved by exactly the same factor: no noise left to doubt it
        exact = math.exp(mean)
        return (0.0 if mean != 0 else 1.0), exact, exact
    error = math.sqrt(variance / n)
    p_value = float(2 * stats.t.sf(abs(mean) / error, df=df))
    margin = float(stats.t.ppf(0.975, df=df)) * error
    return p_value, math.exp(mean - margin), math.exp(mean + margin)


def block_tests(
    pairs: list[tuple[BenchmarkResult, BenchmarkResult]],
) -> list[tuple[float, float, float, str]]:
    """Per pair: p-value, 95% interval of the ratio, and the unit tested (pass or chunk)."""
    paired = [paired_log_ratios(b, c) for b, c in pairs]
    out: list[tuple[float, float, float, str] | None] = [None] * len(pairs)
    for unit in ("pass", "chunk"):
        members = [i for i, (d, u) in enumerate(paired) if u == unit and len(d)]
        differences = [paired[i][0] for i in members]
        if unit == "pass":
            differences = remove_common_drift(differences)
        variances = [float(np.var(d, ddof=1)) if len(d) > 1 else 0.0 for d in differences]
        prior, prior_df = prior_variance(variances, [len(d) - 1 for d in differences])
        for i, d in zip(members, differences, strict=True):
            out[i] = (*moderated_test(d, prior, prior_df), unit)
    for i, (base, cur) in enumerate(pairs):
        if out[i] is None:  # passes on both sides, but not as many: unpaired
            b_logs = np.log([np.median(x) for x in blocks(base)])
            c_logs = np.log([np.median(x) for x in blocks(cur)])
            out[i] = (*welch_test(b_logs, c_logs), "pass")
    return [o for o in out if o is not None]


def has_passes(bench: BenchmarkResult) -> bool:
    counts = bench.extra_info.get("pass_rounds")
    return (
        isinstance(counts, list) and len(counts) >= MIN_PASSES and len(blocks(bench)) == len(counts)
    )


def welch_test(base_logs: np.ndarray, current_logs: np.ndarray) -> tuple[float, float, float]:
    """Unpaired passes (different numbers per side): Welch's t-test on log pass medians."""
    result = stats.ttest_ind(current_logs, base_logs, equal_var=False)
    if not np.isfinite(result.pvalue):
        diff = float(np.mean(current_logs) - np.mean(base_logs))
        return (0.0 if diff else 1.0), math.exp(diff), math.exp(diff)
    interval = result.confidence_interval(0.95)
    return float(result.pvalue), math.exp(interval.low), math.exp(interval.high)


def _median(bench: BenchmarkResult) -> float:
    """The median of the rounds themselves (the stored summary, when a file has no rounds)."""
    return float(np.median(bench.data)) if bench.data else bench.median


def _count(bench: BenchmarkResult, key: str) -> float | None:
    value = bench.extra_info.get(key)
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def count_changes(
    base: BenchmarkResult, current: BenchmarkResult
) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """More work, less work (each as readable reasons), and whether the CPU counts compared.

    Database work (`COUNTED`) is exact: any increase is more work. Instructions and Python
    calls per operation may move by their `tolerance` between processes of the same
    code; beyond it, either way, the change is real.
    """
    more: list[str] = []
    less: list[str] = []
    for key in COUNTED:
        before, after = _count(base, key), _count(current, key)
        if before is not None and after is not None and after != before:
            (more if after > before else less).append(f"{key} {before:g} → {after:g}")
    compared = False
    for key in COUNTS:
        before, after = _count(base, key), _count(current, key)
        if before is None or after is None or before == 0:
            continue
        compared = True
        change = after / before - 1
        if abs(change) > tolerance(key, current) and after != before:
            reason = f"{key} {before:,.0f} → {after:,.0f} ({change:+.1%})"
            (more if change > 0 else less).append(reason)
    return tuple(more), tuple(less), compared


def interleaved(baseline: ResultFile, current: ResultFile) -> bool:
    """Whether the two runs' passes were measured interleaved (as `sqlabench gate` runs them).

    Only then does a paired test over passes separate a change from the machine's drift
    between processes (10-25% here): the runs' time spans overlap. Two runs made one after
    the other never do, however many passes each has.
    """
    b, c = baseline.info, current.info
    try:
        b_start, b_end = instant(b.started, "baseline"), instant(b.finished, "baseline")
        c_start, c_end = instant(c.started, "current"), instant(c.finished, "current")
    except SqlabenchError:
        return False
    return b_start < c_end and c_start < b_end


def like_for_like(baseline: ResultFile, current: ResultFile) -> list[str]:
    """What differs between the two runs' conditions, each as a one-line warning."""
    warnings = []
    b, c = baseline.info, current.info
    for name in RUN_FIELDS:
        if getattr(b, name) != getattr(c, name):
            warnings.append(
                f"not like for like: {name} differs: {getattr(b, name)!r} vs {getattr(c, name)!r}"
            )
    b_backends = {x.name: x for x in b.backends}
    for x in c.backends:
        old = b_backends.get(x.name)
        if old is None:
            continue
        if old.server_version != x.server_version:
            warnings.append(
                f"not like for like: {x.name} server {old.server_version} vs {x.server_version}"
            )
        if old.driver_version != x.driver_version:
            warnings.append(
                f"not like for like: {x.name} driver {old.driver_version} vs {x.driver_version}"
            )
    for question, digest in c.scenario_hashes.items():
        before = b.scenario_hashes.get(question)
        if before and before != digest:
            warnings.append(
                f"not like for like: the {question} scenario's source changed between the runs"
            )
    if b.harness_hash and c.harness_hash and b.harness_hash != c.harness_hash:
        warnings.append(
            "not like for like: the measuring harness's source (measure, counting, plugin, "
            "scenario, backends, models, latency, the database families) changed between the runs"
        )
    if not c.complete or not b.complete:
        warnings.append("a run is incomplete (interrupted or failed benchmarks)")
    return warnings


def check_comparable(baseline: ResultFile, current: ResultFile) -> None:
    """Refuse, in one line, two files whose comparison would only list differences of setup."""
    if not current.benchmarks and not current.info.failures:
        raise SqlabenchError(
            f"{current.path}: has no benchmark to compare (every one failed or was stopped; "
            "see its failures)"
        )
    if baseline.info.profile != current.info.profile:
        raise SqlabenchError(
            f"cannot compare: profiles differ ({baseline.info.profile} vs "
            f"{current.info.profile}): their data sizes are not the same"
        )


def compare(baseline: ResultFile, current: ResultFile, threshold: float = 0.05) -> Comparison:
    if not 0 <= threshold < 10:
        raise SqlabenchError(
            f"--threshold must be a percentage from 0 to 1000, not {threshold * 100:g}"
        )
    check_comparable(baseline, current)
    base_by_name = {b.name: b for b in baseline.benchmarks}
    current_by_name = {b.name: b for b in current.benchmarks}
    names = [n for n in current_by_name if n in base_by_name]
    pairs = [(base_by_name[n], current_by_name[n]) for n in names]

    time_gated = interleaved(baseline, current)
    tests = block_tests(pairs)
    p_values = [t[0] for t in tests]
    adjusted = stats.false_discovery_control(p_values, method="bh") if p_values else np.array([])
    changes = []
    units = set()
    for index, ((base, cur), (p_value, low, high, unit)) in enumerate(
        zip(pairs, tests, strict=True)
    ):
        units.add(unit)
        base_median, cur_median = _median(base), _median(cur)
        ratio = cur_median / base_median
        detectable = (high - low) / 2 if np.isfinite(low) else float("nan")
        significant = float(adjusted[index]) < ALPHA
        more_work, less_work, _ = count_changes(base, cur)
        # wall time gates only where the test can tell a change from drift (unit "pass"
        # over interleaved runs); elsewhere a wall-time change is reported, not gated
        gated = time_gated and unit == "pass"
        if more_work:
            verdict = "more-work"
        elif significant and low > 1 and ratio >= 1 + threshold:
            verdict = "slower" if gated else "slower-ungated"
        elif less_work:
            verdict = "less-work"
        elif significant and high < 1 and ratio <= 1 / (1 + threshold):
            verdict = "faster" if gated else "faster-ungated"
        else:
            verdict = "unchanged"
        changes.append(
            Change(
                name=cur.name,
                question=cur.question,
                backend=cur.backend,
                baseline_median=base_median,
                current_median=cur_median,
                ratio=round(ratio, 4),
                ci_low=round(low, 4),
                ci_high=round(high, 4),
                p_value=p_value,
                p_adjusted=float(adjusted[index]),
                detectable=round(detectable, 4),
                verdict=verdict,
                reasons=more_work or less_work,
                unit=unit,
            )
        )
    failed_now = {f.get("benchmark"): f.get("error", "") for f in current.info.failures}
    for name, base in base_by_name.items():
        if name in current_by_name or name not in failed_now:
            continue
        median = _median(base)
        changes.append(
            Change(
                name=name, question=base.question, backend=base.backend,
                baseline_median=median, current_median=math.nan, ratio=math.nan,
                ci_low=math.nan, ci_high=math.nan, p_value=0.0, p_adjusted=0.0,
                detectable=math.nan, verdict="failed", reasons=(str(failed_now[name]),),
                unit="none",
            )
        )  # fmt: skip
    warnings = like_for_like(baseline, current)
    if "chunk" in units:
        warnings.append(
            "fewer than 3 passes per side: the noise estimate is chunks of one pass's rounds, "
            "which cannot see drift between runs (use run --repeat 3+, or sqlabench gate)"
        )
    ungated = [c for c in changes if c.verdict.endswith("-ungated")]
    if ungated:
        warnings.append(
            f"{len(ungated)} wall-time change(s) not gated: the runs were not measured as "
            "interleaved passes, and between separate processes this machine's noise is "
            "10-25% (the counts from run --instructions are the gate's evidence; for wall "
            "time use sqlabench gate)"
        )
    for key in COUNTS:
        lost = [b.name for b, c in pairs if _count(b, key) is not None and _count(c, key) is None]
        if lost:
            warnings.append(
                f"{len(lost)} benchmark(s) have {key} in the baseline but not in the current "
                f"run, so their {key} were not compared (e.g. {lost[0]}): a counting pass "
                "that failed, or an operation now over the instruction cap"
            )
    if pairs and not any(count_changes(b, c)[2] for b, c in pairs):
        warnings.append(
            "no instruction or Python-call counts on both sides: only database work and "
            "interleaved wall time can gate (run both with --instructions)"
        )
    return Comparison(
        threshold=threshold,
        changes=tuple(changes),
        only_baseline=tuple(
            n for n in base_by_name if n not in current_by_name and n not in failed_now
        ),
        only_current=tuple(n for n in current_by_name if n not in base_by_name),
        warnings=tuple(warnings),
    )


def markdown(result: Comparison) -> str:
    """A pull-request comment: the verdict, then regressions, improvements and counts."""
    regressions, improvements = result.regressions, result.improvements
    unchanged = len(result.changes) - len(regressions) - len(improvements)
    if regressions:
        verdict = f"**{len(regressions)} regression(s)** in {len(result.changes)} benchmarks"
    else:
        verdict = f"No regression in {len(result.changes)} benchmarks"
    lines = [
        f"### sqlabench: {verdict}",
        "",
        f"{len(improvements)} faster, {unchanged} unchanged "
        f"(threshold {result.threshold:.0%}, alpha {ALPHA} after Benjamini-Hochberg).",
    ]
    for title, rows in (("Regressions", regressions), ("Improvements", improvements)):
        if not rows:
            continue
        lines += [
            "",
            f"#### {title}",
            "",
            "| benchmark | baseline | current | ratio (95% CI) | why |",
            "|---|---:|---:|---|---|",
        ]
        for c in rows:
            why = "; ".join(c.reasons) or f"p = {c.p_adjusted:.2g}"
            if c.verdict == "failed":
                lines.append(f"| `{c.name}` | {_ms(c.baseline_median)} | failed | | {why} |")
                continue
            lines.append(
                f"| `{c.name}` | {_ms(c.baseline_median)} | {_ms(c.current_median)} | "
                f"{c.ratio:.3f} ({c.ci_low:.3f} to {c.ci_high:.3f}) | {why} |"
            )
    if result.only_baseline:
        lines += ["", "Missing from the current run:", ""]
        lines += [f"- `{name}`" for name in result.only_baseline]
    if result.warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"
