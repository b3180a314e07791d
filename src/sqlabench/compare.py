"""Comparing two runs: which benchmarks got slower or faster, with how much confidence.

For each benchmark present in both runs (matched by name, which carries the backend), from
the per-round times in `stats.data`: the ratio of medians (current / baseline) with a 95%
bootstrap confidence interval, and a Mann-Whitney U test, its p-values corrected for the many
benchmarks compared at once (Benjamini-Hochberg). A benchmark is slower only when the change
is significant after correction, its interval lies wholly above 1, and the ratio is at least
1 + threshold; faster likewise. Any increase in `statements` or `rows_fetched` is a regression
whatever the timings: doing more work is never noise.

Never touches a database; the result files are all it reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from sqlabench.errors import SqlabenchError
from sqlabench.results import BenchmarkResult, ResultFile

ALPHA = 0.01
BOOTSTRAP_RESAMPLES = 2000
COUNTED = ("statements", "rows_fetched")
"""Per-operation counts: any increase is a regression."""
RUN_FIELDS = ("profile", "rtt_ms", "python", "sqlalchemy", "machine")


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
    """slower, faster, unchanged, or more-work."""
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    threshold: float
    changes: tuple[Change, ...]
    only_baseline: tuple[str, ...]
    only_current: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict in ("slower", "more-work"))

    @property
    def improvements(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict == "faster")

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "regressions": len(self.regressions),
            "improvements": len(self.improvements),
            "unchanged": len(self.changes) - len(self.regressions) - len(self.improvements),
            "warnings": list(self.warnings),
            "only_in_baseline": list(self.only_baseline),
            "only_in_current": list(self.only_current),
            "changes": [asdict(c) for c in self.changes],
        }


def _ratio_interval(base: np.ndarray, current: np.ndarray, seed: int) -> tuple[float, float]:
    if len(base) < 2 or len(current) < 2:
        return (float("nan"), float("nan"))

    def ratio_of_medians(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        result: np.ndarray = np.median(b, axis=axis) / np.median(a, axis=axis)
        return result

    interval = stats.bootstrap(
        (base, current),
        ratio_of_medians,
        n_resamples=BOOTSTRAP_RESAMPLES,
        vectorized=True,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return float(interval.low), float(interval.high)


def _p_value(base: np.ndarray, current: np.ndarray) -> float:
    if len(base) < 2 or len(current) < 2 or (np.ptp(base) == 0 and np.ptp(current) == 0):
        return 1.0
    return float(stats.mannwhitneyu(base, current, alternative="two-sided").pvalue)


def _more_work(base: BenchmarkResult, current: BenchmarkResult) -> tuple[str, ...]:
    reasons = []
    for key in COUNTED:
        before, after = base.extra_info.get(key), current.extra_info.get(key)
        if isinstance(before, int | float) and isinstance(after, int | float) and after > before:
            reasons.append(f"{key} {before:g} → {after:g}")
    return tuple(reasons)


def like_for_like(baseline: ResultFile, current: ResultFile) -> list[str]:
    """What differs between the two runs' conditions, each as a one-line warning."""
    warnings = []
    b, c = baseline.info, current.info
    for name in RUN_FIELDS:
        if getattr(b, name) != getattr(c, name):
            warnings.append(f"{name} differs: {getattr(b, name)!r} vs {getattr(c, name)!r}")
    b_backends = {x.name: x for x in b.backends}
    for x in c.backends:
        old = b_backends.get(x.name)
        if old is None:
            continue
        if old.server_version != x.server_version:
            warnings.append(f"{x.name}: server {old.server_version} vs {x.server_version}")
        if old.driver_version != x.driver_version:
            warnings.append(f"{x.name}: driver {old.driver_version} vs {x.driver_version}")
    for question, digest in c.scenario_hashes.items():
        before = b.scenario_hashes.get(question)
        if before and before != digest:
            warnings.append(f"the {question} scenario's source changed between the runs")
    if not c.complete or not b.complete:
        warnings.append("a run is incomplete (interrupted or failed benchmarks)")
    return warnings


def compare(baseline: ResultFile, current: ResultFile, threshold: float = 0.05) -> Comparison:
    if not 0 <= threshold < 10:
        raise SqlabenchError(f"--threshold must be a percentage from 0 to 1000, not {threshold}")
    base_by_name = {b.name: b for b in baseline.benchmarks}
    current_by_name = {b.name: b for b in current.benchmarks}
    names = [n for n in current_by_name if n in base_by_name]
    pairs = [(base_by_name[n], current_by_name[n]) for n in names]

    samples = [
        (np.asarray(b.data or [b.median]), np.asarray(c.data or [c.median])) for b, c in pairs
    ]
    p_values = [_p_value(b, c) for b, c in samples]
    adjusted = stats.false_discovery_control(p_values, method="bh") if p_values else np.array([])
    changes = []
    for index, ((base, cur), (b_data, c_data)) in enumerate(zip(pairs, samples, strict=True)):
        ratio = cur.median / base.median
        low, high = _ratio_interval(b_data, c_data, seed=index)
        detectable = (high - low) / 2 if np.isfinite(low) else float("nan")
        significant = float(adjusted[index]) < ALPHA
        more_work = _more_work(base, cur)
        if more_work:
            verdict = "more-work"
        elif significant and low > 1 and ratio >= 1 + threshold:
            verdict = "slower"
        elif significant and high < 1 and ratio <= 1 / (1 + threshold):
            verdict = "faster"
        else:
            verdict = "unchanged"
        changes.append(
            Change(
                name=cur.name,
                question=cur.question,
                backend=cur.backend,
                baseline_median=base.median,
                current_median=cur.median,
                ratio=round(ratio, 4),
                ci_low=round(low, 4),
                ci_high=round(high, 4),
                p_value=p_values[index],
                p_adjusted=float(adjusted[index]),
                detectable=round(detectable, 4),
                verdict=verdict,
                reasons=more_work,
            )
        )
    return Comparison(
        threshold=threshold,
        changes=tuple(changes),
        only_baseline=tuple(n for n in base_by_name if n not in current_by_name),
        only_current=tuple(n for n in current_by_name if n not in base_by_name),
        warnings=tuple(like_for_like(baseline, current)),
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
            lines.append(
                f"| `{c.name}` | {_ms(c.baseline_median)} | {_ms(c.current_median)} | "
                f"{c.ratio:.3f} ({c.ci_low:.3f} to {c.ci_high:.3f}) | {why} |"
            )
    if result.warnings:
        lines += ["", "Not like for like:", ""] + [f"- {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"
