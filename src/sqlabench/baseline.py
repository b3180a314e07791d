"""The baseline (results/baseline.json): promoting a run to it, keeping the one it replaces.

The current baseline is first copied, byte for byte, into the archive directory (default
results/runs/) as `baseline-<its start>.json` (`-2`, `-3`, ... when taken: nothing there is
ever overwritten, and the copy keeps the old file's modification time); only then is the new
baseline put in place, atomically. A run that is incomplete or had failing benchmarks is
refused.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlabench import files, results
from sqlabench.errors import SqlabenchError

BASELINE = Path("results/baseline.json")
ARCHIVE = Path("results/runs")
REPEAT = 3
"""Passes of a baseline run (`sqlabench baseline`), each benchmark's rounds joined."""


def newest(directory: str | os.PathLike[str]) -> Path:
    """The result file in `directory` whose run started last (archived baselines aside)."""
    found: list[tuple[datetime, Path]] = []
    for path in sorted(Path(directory).glob("*.json")):
        if path.name.startswith("baseline-"):
            continue
        try:
            info = results.load(path).info
            found.append((results.instant(info.started, str(path)), path))
        except SqlabenchError:
            continue  # not a result: not a candidate
    if not found:
        raise SqlabenchError(f"no result file in {directory}")
    return max(found)[1]


def archive(baseline: Path, directory: Path) -> Path:
    """A byte-for-byte copy of `baseline` in `directory`, under a name not yet taken."""
    payload = baseline.read_bytes()
    try:
        started = results.instant(results.load(baseline).info.started, str(baseline))
        stem = f"baseline-{started.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    except SqlabenchError:  # unreadable, yet still kept
        stem = f"baseline-replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    directory.mkdir(parents=True, exist_ok=True)
    names = [directory / f"{stem}.json"] + [directory / f"{stem}-{n}.json" for n in range(2, 1000)]
    copy = files.write_first_free(names, payload)
    mtime = baseline.stat()
    os.utime(copy, ns=(mtime.st_atime_ns, mtime.st_mtime_ns))  # not "the newest run" by mtime
    return copy


def promote(
    result: str | os.PathLike[str],
    baseline: str | os.PathLike[str] = BASELINE,
    archive_dir: str | os.PathLike[str] = ARCHIVE,
) -> str:
    """Make `result` the baseline; what was done, in one line."""
    try:
        return _promote(Path(result), Path(baseline), Path(archive_dir))
    except OSError as exc:
        raise SqlabenchError(f"{exc.strerror or exc}: {exc.filename}") from None


def _promote(result: Path, baseline: Path, archive_dir: Path) -> str:
    run = results.load(result)
    if not run.info.complete or run.info.failures:
        raise SqlabenchError(
            f"{result}: an incomplete run or one with failing benchmarks cannot be the baseline"
        )
    payload = result.read_bytes()
    kept = ""
    if baseline.exists():
        if baseline.read_bytes() == payload:
            return f"{result} is already the baseline ({baseline})"
        kept = f"; the previous one is kept as {archive(baseline, archive_dir)}"
    baseline.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(baseline, payload, overwrite=True)
    return f"{baseline} is now {result} (started {run.info.started}){kept}"
