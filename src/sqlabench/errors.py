"""The one exception type for errors a user can cause or fix."""

from __future__ import annotations


class SqlabenchError(Exception):
    """Bad input or an unusable environment; the CLI prints it as one line and exits 2."""
