"""Database families: one module each (SQLite, PostgreSQL, ...), found here, and their drivers.

A family owns everything that differs between database products: where its database lives
(a temporary file, a server started here or named by a URL), checking and preparing that
server, the space the suite owns inside it and how that is emptied, connecting (SQLAlchemy
URL; the connect arguments of each driver), the facts recorded about the server, and what it
can do (`Capabilities`), which the questions consult instead of naming a server.

A driver is data: a `Backend` entry in its family's `DRIVERS`, holding its connect callables.
Adding a driver to a known family is one entry; a new family is one module in this package
defining `FAMILY` (a `Family`) and `DRIVERS`, found by `families()`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.metadata
import os
import pkgutil
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from sqlalchemy.engine import URL

from sqlabench.errors import SqlabenchError
from sqlabench.masking import mask_text

Mode = Literal["sync", "async"]


# --- where a database lives ---------------------------------------------------------------------


class Target:
    """One database a backend connects to; each family has its own kind, with what it needs."""

    family_name: ClassVar[str]

    @property
    def family(self) -> Family:
        return family(self.family_name)

    @property
    def display(self) -> str:
        """Where it is, for people (never holding a password)."""
        raise NotImplementedError

    def mask(self, text: str) -> str:
        """`text` with this target's secrets (passwords) taken out."""
        return mask_text(text)


# --- drivers ------------------------------------------------------------------------------------


def _no_connect(backend: Backend, target: Target) -> Any:
    raise ValueError(f"{backend.name} is not a {'sync' if backend.is_async else 'async'} backend")


async def _no_connect_async(backend: Backend, target: Target) -> Any:
    raise ValueError(f"{backend.name} is not an async backend")


def _name_in_connect_args(args: dict[str, Any], name: str) -> dict[str, Any]:
    return {**args, "application_name": name}


@dataclass(frozen=True)
class Backend:
    """One driver of one family, in one mode: an entry of data, connect callables included."""

    name: str
    server: str
    """The family's name (`Family.name`), as results record it."""
    mode: Mode
    driver: str
    """Import name of the driver module."""
    distribution: str
    """PyPI distribution whose version is recorded."""
    dialect: str
    """SQLAlchemy drivername for URLs."""
    paramstyle: Literal["qmark", "format", "numeric"]
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    """Driver settings that change speed, recorded in every result."""
    connect_args: Mapping[str, Any] = field(default_factory=dict)
    """Connect arguments shared by the raw and the SQLAlchemy layers."""
    engine_connect_args: Mapping[str, Any] = field(default_factory=dict)
    """Connect arguments only SQLAlchemy's dialect takes (the raw layer sets them its own way)."""
    connect: Callable[[Backend, Target], Any] = _no_connect
    """A sync raw driver connection (no SQLAlchemy), configured as the SQLAlchemy layers are."""
    connect_async: Callable[[Backend, Target], Awaitable[Any]] = _no_connect_async
    """The same for an async driver."""
    raw_api: str = "dbapi"
    """The shape of the raw connection's API the questions' raw layers are written against:
    `dbapi` (conn.execute(sql, params), sync or awaited), `asyncpg` (prepared statements,
    explicit transactions)."""
    name_connections: Callable[[dict[str, Any], str], dict[str, Any]] = _name_in_connect_args
    """Connect arguments that tag connections with a name the server shows (pools counts them)."""
    version: Callable[[], str] | None = None
    """The driver's version, where it is not its distribution's (sqlite3: the library's)."""

    @property
    def family(self) -> Family:
        return family(self.server)

    @property
    def is_async(self) -> bool:
        return self.mode == "async"

    def driver_installed(self) -> bool:
        return self.driver_problem() is None

    def driver_problem(self) -> str | None:
        """Why the driver cannot be used here (it must import, not only be found), or None."""
        try:
            importlib.import_module(self.driver)
        except ImportError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def driver_version(self) -> str:
        if self.version is not None:
            return self.version()
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    def named_connect_args(self, name: str) -> dict[str, Any]:
        """The SQLAlchemy connect arguments, with connections tagged `name` on the server."""
        return self.name_connections(dict(self.family.engine_options(self)["connect_args"]), name)


# --- families -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a family can do, as the questions ask it."""

    client_server: bool
    """Clients connect to a server (over a socket): pools' grid of concurrent clients runs."""
    copy: bool
    """A bulk path past INSERT (PostgreSQL's COPY): bulk_insert's `copy` strategy runs."""
    returning: bool
    """INSERT .. RETURNING, so SQLAlchemy batches generated keys (insertmanyvalues)."""
    latency_proxy: bool
    """Its connections can go through the latency proxy (TCP or a unix socket it knows)."""
    server_cpu: bool
    """The server's CPU time may be read here (/proc), when the server is local."""
    bulk_ceiling: str
    """bulk_insert's strategy that is the family's ceiling (the fastest way in)."""


class Family:
    """A database family. Subclasses fill in the class attributes and the methods they need."""

    name: ClassVar[str]
    """As results record it (`Backend.server`): never changed once published."""
    title: ClassVar[str]
    """For people: "PostgreSQL"."""
    order: ClassVar[int]
    """Place among the families (their drivers' order in the registry)."""
    dialects: ClassVar[tuple[str, ...]]
    """SQLAlchemy dialect names (`engine.dialect.name`) of this family."""
    capabilities: ClassVar[Capabilities]
    setup_backend: ClassVar[str]
    """The driver entry whose sync SQLAlchemy engine sets up, seeds and verifies (untimed)."""
    url_env: ClassVar[str | None] = None
    """Environment variable naming the server's URL (None: no server to name)."""
    url_option: ClassVar[str | None] = None
    """The option naming the server's URL: `--sqlabench-OPTION` for pytest (added for every
    family). `sqlabench run` names PostgreSQL's alone (`--postgres`); another family's server
    comes from `url_env` or `runner.run(urls=...)` until the CLI loops over families too."""
    url_default: ClassVar[str] = ""
    """What is used when no URL is given, for the option's help (", else ...")."""

    # locating or starting the database

    @contextlib.contextmanager
    def server(self, url: str | None) -> Iterator[Target | None]:
        """The family's server, found at `url` or started here and stopped on exit; None for a
        family without a server (each backend's database is then its own file)."""
        yield None

    def target(self, server: Target | None, backend: Backend, workdir: Path) -> Target:
        """The database `backend` uses in a run: the server, or a file under `workdir`."""
        raise NotImplementedError

    def listing(self) -> str:
        """Where its database will be, for `sqlabench list`."""
        raise NotImplementedError

    def environment(self, server: Target) -> dict[str, str]:
        """What another process (the counting pass) needs in its environment to reach `server`;
        never put on a command line (it may hold a password)."""
        return {}

    # preparing

    def prepare(self, server: Target) -> str:
        """Check the server (reachable, new enough) and make the space the suite owns in it;
        return the server's version, as results record it."""
        raise NotImplementedError

    def version(self, target: Target | None) -> str:
        """The version of a family without a server to prepare (its library's)."""
        return "unknown"

    @contextlib.contextmanager
    def exclusive_use(self, server: Target) -> Iterator[None]:
        """Hold the suite's lock on the server for a run (two runs would re-seed under each
        other)."""
        yield

    def reset(self, conn: Any, metadata: Any) -> None:
        """Before seeding: empty the space the suite owns, and only that."""
        metadata.drop_all(conn)

    def refresh_statistics(self, conn: Any, tables: list[str]) -> None:
        """After seeding: fresh planner statistics for the seeded tables."""
        from sqlalchemy import text

        for table in tables:
            conn.execute(text(f"ANALYZE {table}"))

    def empty_table(self, conn: Any, table: str) -> None:
        """Empty one of the suite's tables and restart its generated keys at 1."""
        from sqlalchemy import text

        conn.execute(text(f"DELETE FROM {table}"))

    # connecting

    def sqlalchemy_url(self, backend: Backend, target: Target) -> URL:
        raise NotImplementedError

    def engine_options(self, backend: Backend) -> dict[str, Any]:
        """create_engine's options for `backend`: its connect arguments, shared and own."""
        args = {**backend.connect_args, **backend.engine_connect_args}
        return {"connect_args": copy.deepcopy(args)}

    # the latency proxy (families with `latency_proxy`)

    def upstream(self, server: Target) -> str:
        """Where the proxy connects: `unix:PATH` or `HOST:PORT`."""
        raise SqlabenchError(f"{self.title} cannot be reached through the latency proxy")

    def through(self, server: Target, host: str, port: int) -> Target:
        """`server` as reached through a proxy listening at host:port."""
        raise SqlabenchError(f"{self.title} cannot be reached through the latency proxy")

    @contextlib.contextmanager
    def round_trip(self, server: Target) -> Iterator[Callable[[], Any]]:
        """A callable making one `SELECT 1` round trip on one connection, open meanwhile."""
        raise SqlabenchError(f"{self.title} has no round trips to measure")
        yield  # pragma: no cover

    # the server's facts for the pools question (families with `client_server`)

    def server_limits(self, conn: Any) -> tuple[int, int, int]:
        """(client connections in use, the most allowed, those reserved for superusers)."""
        raise NotImplementedError

    def server_process(self, conn: Any) -> int | None:
        """The pid whose CPU time, with its children's, is the server's, if this machine can
        see it (the server is local and /proc readable); else None."""
        return None


@cache
def _discovered() -> tuple[dict[str, Family], tuple[Backend, ...]]:
    found: list[tuple[Family, tuple[Backend, ...]]] = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append((module.FAMILY, tuple(module.DRIVERS)))
    found.sort(key=lambda f: f[0].order)
    return {f.name: f for f, _ in found}, tuple(d for _, ds in found for d in ds)


def families() -> dict[str, Family]:
    """Every family module of this package, by name, in their order."""
    return _discovered()[0]


def drivers() -> tuple[Backend, ...]:
    """Every family's driver entries, families in their order."""
    return _discovered()[1]


def family(name: str) -> Family:
    try:
        return families()[name]
    except KeyError:
        raise SqlabenchError(
            f"unknown database family {name!r} (known: {', '.join(families())})"
        ) from None


def server_urls(given: Mapping[str, str | None]) -> dict[str, str | None]:
    """Each server family's URL: the one given, else its environment variable's, else None
    (the family then starts its own server, or says why it cannot)."""
    return {
        f.name: given.get(f.name) or os.environ.get(f.url_env)
        for f in families().values()
        if f.url_env
    }


def driver(name: str) -> Backend:
    for entry in drivers():
        if entry.name == name:
            return entry
    raise SqlabenchError(f"unknown backend {name!r}")


def setup_engine(target: Target) -> Any:
    """A sync engine for setup and verification (never timed), through the family's setup
    driver."""
    from sqlalchemy import create_engine

    found = target.family
    backend = driver(found.setup_backend)
    return create_engine(found.sqlalchemy_url(backend, target), **found.engine_options(backend))


def family_of(engine: Any) -> Family:
    """The family of a SQLAlchemy engine (or connection), from its dialect."""
    dialect = engine.dialect.name
    for candidate in families().values():
        if dialect in candidate.dialects:
            return candidate
    raise SqlabenchError(f"no database family knows the dialect {dialect!r}")


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command: [state, ppid, ...], utime at 11."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def proc_comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()
