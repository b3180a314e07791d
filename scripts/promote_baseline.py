"""Make a run the baseline (results/baseline.json), keeping the baseline it replaces.

    .venv/bin/python scripts/promote_baseline.py RESULT         # this result file
    .venv/bin/python scripts/promote_baseline.py --newest DIR   # the run in DIR that started last

The current baseline is first copied, byte for byte, into the archive directory (default
results/runs/) as `baseline-<its start>.json` (`-2`, `-3`, ... when taken: nothing there is
ever overwritten, and the copy keeps the old file's modification time); only then is the new
baseline moved into place, atomically. A run that is incomplete or had failing benchmarks is
refused. Exit status: 0 done (or already the baseline), 2 bad input, said in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from sqlabench import results
from sqlabench.errors import SqlabenchError

BASELINE = Path("results/baseline.json")
ARCHIVE = Path("results/runs")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise SqlabenchError(f"{message} (see: {self.prog} --help)")


def newest(directory: Path) -> Path:
    """The result file in `directory` whose run started last (archived baselines aside)."""
    found: list[tuple[datetime, Path]] = []
    for path in sorted(directory.glob("*.json")):
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


def _create(path_for: Sequence[Path], payload: bytes) -> Path:
    """Write `payload` to the first of these paths that does not exist yet."""
    for path in path_for:
        try:
            with path.open("xb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        except FileExistsError:
            continue
        return path
    raise SqlabenchError(f"no free archive name for {path_for[0]}")


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
    copy = _create(names, payload)
    mtime = baseline.stat()
    os.utime(copy, ns=(mtime.st_atime_ns, mtime.st_mtime_ns))  # not "the newest run" by mtime
    return copy


def promote(result: Path, baseline: Path = BASELINE, archive_dir: Path = ARCHIVE) -> str:
    """Make `result` the baseline; what was done, in one line."""
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
    fd, tmp = tempfile.mkstemp(dir=baseline.parent, prefix=f".{baseline.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, baseline)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return f"{baseline} is now {result} (started {run.info.started}){kept}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="promote_baseline.py", description=(__doc__ or "").split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("result", nargs="?", metavar="RESULT", help="the result file to promote")
    which.add_argument("--newest", metavar="DIR", help="promote the run in DIR started last")
    parser.add_argument("--baseline", default=str(BASELINE), metavar="PATH")
    parser.add_argument("--archive", default=str(ARCHIVE), metavar="DIR")
    try:
        ns = parser.parse_args(argv)
        result = newest(Path(ns.newest)) if ns.newest else Path(ns.result)
        print(promote(result, Path(ns.baseline), Path(ns.archive)))
    except SqlabenchError as exc:
        print(f"promote_baseline: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"promote_baseline: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
