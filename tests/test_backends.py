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


def test_driver_is_stripped_and_unix_socket_host_is_kept() -> None:
    url = parse_postgres_url("postgresql+asyncpg://postgres:@/postgres?host=/tmp/pg")
    assert url.drivername == "postgresql"
    params = PostgresTarget(url, embedded=True).connect_params()
    assert params["host"] == "/tmp/pg"
    assert params["database"] == "postgres"


def test_placeholders_follow_each_paramstyle() -> None:
    sql = "SELECT * FROM t WHERE a = {} AND b = {}"
    assert placeholders(REGISTRY["sqlite"], sql).endswith("a = ? AND b = ?")
    assert placeholders(REGISTRY["psycopg"], sql).endswith("a = %s AND b = %s")
    assert placeholders(REGISTRY["asyncpg"], sql).endswith("a = $1 AND b = $2")
