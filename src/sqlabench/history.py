"""History: each benchmark's median across stored runs, oldest run first.

`series` computes the values once (runs with their labels and start times, and per benchmark
one median per run or None where the run lacks it); `table` lays them out for a terminal, and a
chart can be drawn from the same `History`. Reads result files only, never a database.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlabench import results
from sqlabench.errors import SqlabenchError
from sqlabench.summary import Table, format_ratio, format_time


@dataclass(frozen=True)
class Run:
    """Where one column of the history comes from."""

    label: str
    started: datetime
    path: str
    commit: str
    profile: str
    repeat: int
    complete: bool


def ratio(medians: Sequence[float | None]) -> float | None:
    """Last / first of the runs that have a median; None with fewer than two."""
    present = [m for m in medians if m is not None]
    if len(present) < 2 or not present[0]:
        return None
    return present[-1] / present[0]


@dataclass(frozen=True)
class History:
    """What a table or a chart of the history needs, oldest run first."""

    runs: tuple[str, ...]
    """Each run's label: date and short commit (`2026-11-25 c5f0252`, `+` when dirty), with
    the time added when two runs would share a label."""
    datetimes: tuple[datetime, ...]
    """When each run started."""
    series: dict[str, list[float | None]]
    """Per benchmark name, in the order benchmarks first appear: its median (seconds) in each
    run, None where that run lacks it. Aligned with `runs`."""
    details: tuple[Run, ...]
    """Per run: its file, commit, profile, passes, completeness."""

    def ratio(self, name: str) -> float | None:
        return ratio(self.series[name])

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "label": r.label,
                    "started": r.started.isoformat(),
                    "path": r.path,
                    "commit": r.commit,
                    "profile": r.profile,
                    "repeat": r.repeat,
                    "complete": r.complete,
                }
                for r in self.details
            ],
            "benchmarks": [
                {"name": name, "medians": medians, "last_over_first": ratio(medians)}
                for name, medians in self.series.items()
            ],
        }


def _short(commit: str) -> str:
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:7] + ("+" if dirty else "")


def _labels(files: list[results.ResultFile], starts: list[datetime]) -> list[str]:
    commits = [_short(f.info.suite_commit) for f in files]
    days = [f"{s.astimezone(UTC):%Y-%m-%d} {c}" for s, c in zip(starts, commits, strict=True)]
    labels = [
        f"{s.astimezone(UTC):%Y-%m-%d %H:%M:%S} {c}" if days.count(day) > 1 else day
        for day, s, c in zip(days, starts, commits, strict=True)
    ]
    return [
        f"{label} #{labels[:index].count(label) + 1}" if labels.count(label) > 1 else label
        for index, label in enumerate(labels)  # same second, same commit: numbered in order
    ]


def series(files: Sequence[str | os.PathLike[str] | results.ResultFile]) -> History:
    """The history of result files (paths or loaded results), ordered by each run's start."""
    if not files:
        raise SqlabenchError("name at least one result file")
    loaded = [f if isinstance(f, results.ResultFile) else results.load(f) for f in files]
    starts = [results.instant(f.info.started, str(f.path)) for f in loaded]
    order = sorted(range(len(loaded)), key=lambda i: starts[i])
    loaded = [loaded[i] for i in order]
    starts = [starts[i] for i in order]
    labels = _labels(loaded, starts)
    per_run = [{b.name: b.median for b in f.benchmarks} for f in loaded]
    names = dict.fromkeys(name for medians in per_run for name in medians)
    return History(
        runs=tuple(labels),
        datetimes=tuple(starts),
        series={name: [medians.get(name) for medians in per_run] for name in names},
        details=tuple(
            Run(
                label=label,
                started=start,
                path=str(f.path) if f.path else "",
                commit=f.info.suite_commit,
                profile=f.info.profile,
                repeat=f.info.repeat,
                complete=f.info.complete,
            )
            for f, start, label in zip(loaded, starts, labels, strict=True)
        ),
    )


def table(history: History) -> Table:
    """One row per benchmark: its median in each run (oldest first) and last / first."""
    notes = [
        f"{r.label}: {r.path or '(not from a file)'} ({r.profile}"
        + (f", {r.repeat} passes" if r.repeat > 1 else "")
        + ("" if r.complete else ", incomplete")
        + ")"
        for r in history.details
    ]
    profiles = sorted({r.profile for r in history.details})
    if len(profiles) > 1:
        notes.append(
            f"warning: the runs used different profiles ({', '.join(profiles)}); "
            "their medians are not comparable across them"
        )
    return Table(
        "history: median per operation, oldest run first",
        ("benchmark", *history.runs, "last/first"),
        [
            (name, *(format_time(m) for m in medians), format_ratio(ratio(medians)))
            for name, medians in history.series.items()
        ],
        notes,
    )
