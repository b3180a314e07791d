"""The one way sqlabench writes a file: complete or not at all, never half a file.

The data goes to a temporary file beside the target, is flushed to disk, then put in place in
one step: `os.replace` where the file may be replaced (charts, reports, the baseline), or
`os.link`, which fails on a name that is taken, where nothing may ever be overwritten (result
files, archived baselines). The file gets the usual permissions (0666 less the umask), not
mkstemp's 0600: results and charts are for everyone who shares the checkout.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from sqlabench.errors import SqlabenchError

Data = str | bytes | Callable[[BinaryIO], object]
"""What to write: text (written as UTF-8), bytes, or a function that writes into a binary file
(e.g. a matplotlib figure's `savefig`)."""


class NameTaken(SqlabenchError):
    """Every name offered was taken (a write that must not replace a file)."""


def write_atomic(path: str | os.PathLike[str], data: Data, *, overwrite: bool) -> Path:
    """Write `data` to `path` atomically; with `overwrite=False` an existing file is kept and
    NameTaken raised instead. Returns the path written."""
    target = Path(path)
    if overwrite:
        with _staged(target, data) as tmp:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise _cannot(target, exc) from None
        return target
    return write_first_free([target], data)


def write_first_free(paths: Iterable[str | os.PathLike[str]], data: Data) -> Path:
    """Write `data` atomically under the first of `paths` (all in one directory) not taken.

    The data is written once; each name is then tried with a hard link, which never replaces
    a file, so two writers racing for a name both succeed, under different names.
    """
    names = [Path(p) for p in paths]
    if not names:
        raise ValueError("write_first_free needs at least one path")
    with _staged(names[0], data) as tmp:
        for name in names:
            try:
                os.link(tmp, name)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _cannot(name, exc) from None
            return name
    if len(names) == 1:
        raise NameTaken(f"cannot write {names[0]}: it exists and is never overwritten")
    raise NameTaken(f"cannot write {names[0]}: it and the {len(names) - 1} other names exist")


@contextlib.contextmanager
def _staged(target: Path, data: Data) -> Iterator[str]:
    """A temporary file beside `target` holding `data` on disk; removed when the block ends."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot(target, exc) from None
    try:
        try:
            os.chmod(tmp, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, str):
                    fh.write(data.encode("utf-8"))
                elif isinstance(data, bytes):
                    fh.write(data)
                else:
                    data(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise _cannot(target, exc) from None
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cannot(path: Path, exc: OSError) -> SqlabenchError:
    return SqlabenchError(f"cannot write {path}: {exc.strerror or exc}")
