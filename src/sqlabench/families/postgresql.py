"""PostgreSQL: a server named by URL, or the embedded one started for the run.

On PostgreSQL the suite only ever works inside the schema it owns (`sqlabench`), marked by a
comment. It refuses a same-named schema without that mark, and it never names an object outside
the schema: connections run with `search_path=sqlabench` and nothing else.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from sqlabench import embedded
from sqlabench.embedded import POSTGRES_URL_ENV, embedded_server, provenance
from sqlabench.errors import SqlabenchError
from sqlabench.families import (
    Backend,
    Capabilities,
    Family,
    Target,
    proc_comm,
    proc_stat,
    setup_engine,
)
from sqlabench.masking import mask_text, mask_url, url_secrets

SCHEMA = "sqlabench"
"""Every object the suite makes on PostgreSQL lives in this schema, which it owns."""
SCHEMA_MARKER = "sqlabench: made and owned by the sqlabench benchmark suite"
RUN_LOCK_KEY = 0x5A1AB3AC  # advisory lock key; advisory locks are per database
MIN_POSTGRES_VERSION = 120000

# Driver settings that change speed, set explicitly and identically for the raw layer and the
# SQLAlchemy layers so the comparison is like for like. They are recorded in every result.
PSYCOPG_PREPARE_THRESHOLD = 5  # psycopg's own default, made explicit
ASYNCPG_STATEMENT_CACHE = 100  # asyncpg's default; SQLAlchemy's asyncpg dialect default too


@dataclass(frozen=True)
class PostgresTarget(Target):
    family_name: ClassVar[str] = "postgresql"
    url: URL
    """A plain postgresql:// URL; it may hold a password, so it is never printed as is."""
    embedded: bool

    @property
    def display(self) -> str:
        return mask_url(self.url) + (f" (embedded: {provenance()})" if self.embedded else "")

    def dsn(self) -> str:
        """The URL as a libpq/asyncpg DSN, query parameters included (holds the password)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def mask(self, text: str) -> str:
        return mask_text(text, *url_secrets(self.url))


def parse_postgres_url(raw: str) -> URL:
    """A user-given PostgreSQL URL as a plain postgresql:// URL, or a one-line error."""
    try:
        url = make_url(raw)
        url.port  # noqa: B018  (a port that is not a number fails here)
    except (ArgumentError, ValueError):
        raise SqlabenchError(f"not a database URL: {mask_text(raw)!r}") from None
    if url.get_backend_name() != "postgresql":
        raise SqlabenchError(f"not a PostgreSQL URL: {mask_url(url)!r}")
    if not url.database:
        raise SqlabenchError(f"the PostgreSQL URL names no database: {mask_url(url)!r}")
    return url.set(drivername="postgresql")


@contextlib.contextmanager
def postgres_target(url: str | None) -> Iterator[PostgresTarget]:
    """The server named by `url`, or else an embedded one started here and stopped on exit."""
    if url:
        yield PostgresTarget(parse_postgres_url(url), embedded=False)
        return
    with embedded_server() as embedded_url:
        yield PostgresTarget(make_url(embedded_url), embedded=True)


def upstream_of(url: URL) -> str:
    """Where the proxy connects: `unix:PATH` for a socket directory, else `HOST:PORT`."""
    port = url.port or 5432
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    if not host or host.startswith("/"):
        directory = host or "/var/run/postgresql"
        return f"unix:{directory}/.s.PGSQL.{port}"
    return f"{host}:{port}"


def check_server_version(version_num: int, version: str, where: str) -> None:
    """PostgreSQL 12 or newer (generated columns, RETURNING everywhere SQLAlchemy needs)."""
    if version_num < MIN_POSTGRES_VERSION:
        raise SqlabenchError(f"PostgreSQL {version} at {where} is too old (need 12 or newer)")


def _describe_connect_error(target: PostgresTarget, exc: BaseException) -> str:
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return f"cannot connect to PostgreSQL at {target.display}: {target.mask(detail)}"


def _ensure_owned_schema(conn: Any) -> None:
    comment = conn.execute(
        text("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = :s"),
        {"s": SCHEMA},
    ).first()
    if comment is None:
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(text(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_MARKER}'"))
    elif comment[0] != SCHEMA_MARKER:
        raise SqlabenchError(
            f"a schema named {SCHEMA!r} already exists and was not made by sqlabench; "
            "refusing to touch it (drop or rename it, or use another database)"
        )
    current = conn.execute(text("SELECT current_schema()")).scalar_one()
    if current != SCHEMA:
        raise SqlabenchError(
            f"connections do not resolve names in schema {SCHEMA!r} (current schema: "
            f"{current!r}); refusing to create tables anywhere else"
        )


def _reset_owned_schema(conn: Any) -> None:
    """Empty the suite's own schema: whatever an older or newer sqlabench left there goes."""
    _ensure_owned_schema(conn)
    conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))
    conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    conn.execute(text(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_MARKER}'"))


class PostgresFamily(Family):
    name = "postgresql"
    title = "PostgreSQL"
    order = 20
    dialects = ("postgresql",)
    capabilities = Capabilities(
        client_server=True,
        copy=True,
        returning=True,
        latency_proxy=True,
        server_cpu=True,
        bulk_ceiling="copy",
    )
    setup_backend = "psycopg"
    url_env = POSTGRES_URL_ENV
    url_option = "postgres"
    url_default = ", else an embedded server"

    # locating or starting the server

    @contextlib.contextmanager
    def server(self, url: str | None) -> Iterator[Target | None]:
        with postgres_target(url) as target:
            yield target

    def target(self, server: Target | None, backend: Backend, workdir: Path) -> Target:
        assert server is not None
        return server

    def listing(self) -> str:
        url = os.environ.get(POSTGRES_URL_ENV)
        if url:
            return f"{POSTGRES_URL_ENV}={mask_url(url)}"
        if embedded.package_version():
            return f"embedded ({provenance()})"
        return "none (see below)"

    def environment(self, server: Target) -> dict[str, str]:
        assert isinstance(server, PostgresTarget)
        return {POSTGRES_URL_ENV: server.url.render_as_string(hide_password=False)}

    # preparing

    def prepare(self, server: Target) -> str:
        """Check the server and make sure the owned schema exists; return the server version."""
        from sqlalchemy.engine import Connection

        assert isinstance(server, PostgresTarget)
        engine = setup_engine(server)
        try:
            with engine.connect() as conn:
                assert isinstance(conn, Connection)
                version_num = int(conn.execute(text("SHOW server_version_num")).scalar_one())
                version = str(conn.execute(text("SHOW server_version")).scalar_one())
                check_server_version(version_num, version, server.display)
                _ensure_owned_schema(conn)
                conn.commit()
        except DBAPIError as exc:
            raise SqlabenchError(_describe_connect_error(server, exc)) from None
        finally:
            engine.dispose()
        return version

    @contextlib.contextmanager
    def exclusive_use(self, server: Target) -> Iterator[None]:
        """Hold the database's sqlabench lock for a run: two runs would re-seed under each other."""
        import psycopg

        assert isinstance(server, PostgresTarget)
        try:
            conn = psycopg.connect(server.dsn(), autocommit=True)
        except psycopg.Error as exc:
            raise SqlabenchError(_describe_connect_error(server, exc)) from None
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()
            if not (got and got[0]):
                raise SqlabenchError(
                    f"another sqlabench run is using the database at {server.display}; "
                    "wait for it to finish (runs on one database cannot share it)"
                )
            yield
        finally:
            conn.close()  # closing the session releases the lock

    def reset(self, conn: Any, metadata: Any) -> None:
        _reset_owned_schema(conn)

    def empty_table(self, conn: Any, table: str) -> None:
        # a strategy that left its transaction open must fail the run, not hang it
        conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        conn.execute(text(f"TRUNCATE {table} RESTART IDENTITY"))

    # connecting

    def sqlalchemy_url(self, backend: Backend, target: Target) -> URL:
        assert isinstance(target, PostgresTarget)
        return target.url.set(drivername=backend.dialect)

    # the latency proxy

    def upstream(self, server: Target) -> str:
        assert isinstance(server, PostgresTarget)
        return upstream_of(server.url)

    def through(self, server: Target, host: str, port: int) -> Target:
        assert isinstance(server, PostgresTarget)
        query = {k: v for k, v in server.url.query.items() if k != "host"}
        return PostgresTarget(server.url.set(host=host, port=port, query=query), server.embedded)

    @contextlib.contextmanager
    def round_trip(self, server: Target) -> Iterator[Callable[[], Any]]:
        import psycopg

        assert isinstance(server, PostgresTarget)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            yield lambda: conn.execute("SELECT 1").fetchone()

    # the server's facts for the pools question

    def server_limits(self, conn: Any) -> tuple[int, int, int]:
        max_connections = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
        reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one())
        in_use = int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).scalar_one()
        )
        return in_use, max_connections, reserved

    def server_process(self, conn: Any) -> int | None:
        """The postmaster, when the backend answering `pg_backend_pid()` shows in /proc as a
        `postgres` process: its own time, its reaped children's (closed connections) and
        its living children's add up to the server's."""
        backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        try:
            if proc_comm(backend) == "postgres":
                parent = int(proc_stat(backend)[1])
                return parent if proc_comm(parent) == "postgres" else None
        except (OSError, ValueError, IndexError):
            return None
        return None


FAMILY = PostgresFamily()


# --- drivers ------------------------------------------------------------------------------------


def _psycopg_connect(backend: Backend, target: Target) -> Any:
    import psycopg

    assert isinstance(target, PostgresTarget)
    return psycopg.connect(target.dsn(), **copy.deepcopy(dict(backend.connect_args)))


async def _psycopg_connect_async(backend: Backend, target: Target) -> Any:
    import psycopg

    assert isinstance(target, PostgresTarget)
    return await psycopg.AsyncConnection.connect(
        target.dsn(), **copy.deepcopy(dict(backend.connect_args))
    )


async def _asyncpg_connect(backend: Backend, target: Target) -> Any:
    import asyncpg

    assert isinstance(target, PostgresTarget)
    return await asyncpg.connect(
        target.dsn(),
        statement_cache_size=ASYNCPG_STATEMENT_CACHE,
        **copy.deepcopy(dict(backend.connect_args)),
    )


def _name_in_server_settings(args: dict[str, Any], name: str) -> dict[str, Any]:
    return {**args, "server_settings": {**args["server_settings"], "application_name": name}}


_PSYCOPG_SETTINGS = {
    "prepare_threshold": PSYCOPG_PREPARE_THRESHOLD,
    "autocommit": False,
    "row_type": "tuple",
}
_PSYCOPG_CONNECT_ARGS = {
    "options": f"-c search_path={SCHEMA}",
    "prepare_threshold": PSYCOPG_PREPARE_THRESHOLD,
}
_ASYNCPG_SETTINGS = {
    "prepared_statements": f"cached, {ASYNCPG_STATEMENT_CACHE} per connection",
    "transaction": "explicit, as SQLAlchemy's asyncpg dialect opens one",
    "row_type": "Record",
}

DRIVERS = (
    Backend(
        "psycopg", "postgresql", "sync", "psycopg", "psycopg", "postgresql+psycopg", "format",
        "PostgreSQL through psycopg 3, sync", _PSYCOPG_SETTINGS,
        connect_args=_PSYCOPG_CONNECT_ARGS, connect=_psycopg_connect,
    ),
    Backend(
        "psycopg_async", "postgresql", "async", "psycopg", "psycopg",
        "postgresql+psycopg_async", "format",
        "PostgreSQL through psycopg 3, asyncio", _PSYCOPG_SETTINGS,
        connect_args=_PSYCOPG_CONNECT_ARGS, connect_async=_psycopg_connect_async,
    ),
    Backend(
        "asyncpg", "postgresql", "async", "asyncpg", "asyncpg", "postgresql+asyncpg", "numeric",
        "PostgreSQL through asyncpg", _ASYNCPG_SETTINGS,
        connect_args={"server_settings": {"search_path": SCHEMA}},
        engine_connect_args={"prepared_statement_cache_size": ASYNCPG_STATEMENT_CACHE},
        connect_async=_asyncpg_connect, raw_api="asyncpg",
        name_connections=_name_in_server_settings,
    ),
)  # fmt: skip
