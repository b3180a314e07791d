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


def test_every_driver_entry_belongs_to_a_family_module() -> None:
    """Families are found by module; their entries make the registry, names and order as
    results have always recorded them (`server` is the family's name)."""
    from sqlabench.families import families, family

    assert list(families()) == ["sqlite", "postgresql"]
    assert [(b.name, b.server) for b in REGISTRY.values()] == [
        ("sqlite", "sqlite"), ("aiosqlite", "sqlite"), ("psycopg", "postgresql"),
        ("psycopg_async", "postgresql"), ("asyncpg", "postgresql"),
    ]  # fmt: skip
    for backend in REGISTRY.values():
        assert backend.family is family(backend.server)
        assert backend.dialect.split("+")[0] in backend.family.dialects
        setup = get_backend(backend.family.setup_backend)
        assert setup.server == backend.server and setup.mode == "sync"
    with pytest.raises(SqlabenchError, match="unknown database family 'mysql'"):
        family("mysql")


def test_connect_arguments_are_unchanged_by_the_families() -> None:
    """Raw and SQLAlchemy layers connect exactly as before backends became families."""
    from sqlabench.backends import engine_options

    search_path = {"options": "-c search_path=sqlabench", "prepare_threshold": 5}
    assert engine_options(REGISTRY["sqlite"]) == {"connect_args": {}}
    assert engine_options(REGISTRY["psycopg"]) == {"connect_args": search_path}
    assert engine_options(REGISTRY["psycopg_async"]) == {"connect_args": search_path}
    assert engine_options(REGISTRY["asyncpg"]) == {
        "connect_args": {
            "server_settings": {"search_path": "sqlabench"},
            "prepared_statement_cache_size": 100,
        }
    }
    named = REGISTRY["asyncpg"].named_connect_args("tag")
    assert named["server_settings"] == {"search_path": "sqlabench", "application_name": "tag"}
    tagged = REGISTRY["psycopg"].named_connect_args("tag")
    assert tagged == {**search_path, "application_name": "tag"}
    # each call is a copy: tagging one engine's connections never tags another's
    assert engine_options(REGISTRY["asyncpg"])["connect_args"]["server_settings"] == {
        "search_path": "sqlabench"
    }
    assert REGISTRY["sqlite"].driver_version().count(".") == 2  # the library's, not a package's


def test_questions_ask_capabilities_not_server_names() -> None:
    from conftest import load_scenario

    bulk, pools = load_scenario("bulk_insert"), load_scenario("pools")
    chosen = list(REGISTRY.values())
    copy_on = {c.backend.name for c in bulk.cases(chosen, "smoke") if c.strategy == "copy"}
    assert copy_on == {"psycopg", "psycopg_async", "asyncpg"}
    ceilings = {c.backend.name: c.strategy for c in bulk.cases(chosen, "smoke") if c.is_ceiling}
    assert ceilings == {
        "sqlite": "raw_executemany", "aiosqlite": "raw_executemany",
        "psycopg": "copy", "psycopg_async": "copy", "asyncpg": "copy",
    }  # fmt: skip
    assert {c.backend.server for c in pools.cases(chosen, "smoke")} == {"postgresql"}


def test_no_harness_module_branches_on_a_server_or_driver_name() -> None:
    """What differs between databases is asked of their family or driver entry: a new family
    is one module under sqlabench/families, with no `if server == ...` to find elsewhere."""
    import re
    from pathlib import Path

    import sqlabench

    package = Path(sqlabench.__file__).parent
    modules = [
        package / f"{name}.py"
        for name in ("backends", "database", "runner", "plugin", "latency", "scenario")
    ]
    modules += sorted((package / "questions").glob("*.py"))
    branch = re.compile(
        r"\.(server|driver)\s*[!=]=|PostgresTarget|SqliteTarget|\"(postgresql|sqlite|asyncpg|"
        r"psycopg|aiosqlite)\"\s*(if|else|==)"
    )
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in modules
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if branch.search(line) and "import" not in line
    ]
    assert found == []
