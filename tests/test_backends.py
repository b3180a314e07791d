import pytest

from sqlabench.backends import (
    DEFAULT_BACKENDS,
    REGISTRY,
    PostgresTarget,
    get_backend,
    parse_postgres_url,
    placeholders,
    resolve_backends,
)
from sqlabench.errors import SqlabenchError


def test_registry_has_the_five_backends() -> None:
    assert set(REGISTRY) == {"sqlite", "aiosqlite", "psycopg", "psycopg_async", "asyncpg"}
    assert tuple(REGISTRY) == DEFAULT_BACKENDS
    assert {b.mode for b in REGISTRY.values()} == {"sync", "async"}


def test_unknown_backend_is_a_one_line_error() -> None:
    with pytest.raises(SqlabenchError, match="unknown backend 'mysql'"):
        get_backend("mysql")


def test_resolve_backends_keeps_registry_order_and_dedups() -> None:
    chosen = resolve_backends(["asyncpg", "sqlite", "asyncpg"])
    assert [b.name for b in chosen] == ["sqlite", "asyncpg"]
    assert [b.name for b in resolve_backends([])] == list(REGISTRY)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://root@localhost/test", "not a PostgreSQL URL"),
        ("postgresql://u:pw@localhost", "names no database"),
    ],
)
def test_bad_postgres_urls(raw: str, message: str) -> None:
    with pytest.raises(SqlabenchError, match=message) as info:
        parse_postgres_url(raw)
    assert "pw" not in str(info.value)


def test_driver_is_stripped_and_query_parameters_reach_the_raw_drivers() -> None:
    url = parse_postgres_url("postgresql+asyncpg://u:pw@/db?host=/tmp/pg&application_name=x")
    assert url.drivername == "postgresql"
    dsn = PostgresTarget(url, embedded=True).dsn()
    assert dsn.startswith("postgresql://u:pw@/db?")
    assert "host=%2Ftmp%2Fpg" in dsn and "application_name=x" in dsn


def test_a_port_that_is_not_a_number_is_bad_input() -> None:
    with pytest.raises(SqlabenchError, match="not a database URL"):
        parse_postgres_url("postgresql://postgres@127.0.0.1:abc/test")


def test_placeholders_follow_each_paramstyle() -> None:
    sql = "SELECT * FROM t WHERE a = {} AND b = {}"
    assert placeholders(REGISTRY["sqlite"], sql).endswith("a = ? AND b = ?")
    assert placeholders(REGISTRY["psycopg"], sql).endswith("a = %s AND b = %s")
    assert placeholders(REGISTRY["asyncpg"], sql).endswith("a = $1 AND b = $2")


def test_dead_processes_are_forgotten_as_server_users(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess

    from sqlabench.embedded import forget_dead_handles

    dead = subprocess.Popen(["true"])
    dead.wait()
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([os.getpid(), dead.pid]))
    forget_dead_handles(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]
    forget_dead_handles(tmp_path / "missing")  # no list yet: nothing to do
