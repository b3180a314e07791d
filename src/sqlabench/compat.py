"""Every difference between the SQLAlchemy versions the suite supports (2.0.x and 2.1.x).

Names that moved between 2.0 and 2.1 and internals the questions read live here, and only
here, so supporting another release is an edit to this module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import strategies

try:  # SQLAlchemy 2.1 name, then the 2.0 one
    from sqlalchemy.util import await_ as await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util import await_only as await_


def selectin_chunk_size() -> int:
    """Keys per IN list of selectinload, read from the installed SQLAlchemy (500 in 2.x)."""
    # the loader class is private in 2.1 (_SelectInLoader) and public in 2.0 (SelectInLoader)
    names = ("_SelectInLoader", "SelectInLoader")
    loader: Any = next(getattr(strategies, n) for n in names if hasattr(strategies, n))
    return int(loader._chunksize)


__all__ = ["await_", "selectin_chunk_size"]
