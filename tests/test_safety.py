"""Pointing the suite at a database with user data: it works only in its own schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from conftest import run_cli

USER_TABLES = """
CREATE TABLE public.users (id int primary key, name text, email text, is_active bool);
CREATE TABLE public.posts (id int primary key, title text, author_id int);
INSERT INTO public.users VALUES (1, 'real customer', 'c@example.org', true), (2, 'x', 'y', false);
INSERT INTO public.posts VALUES (10, 'keep me', 1);
"""


def snapshot(conn: Any) -> list[Any]:
    return [
        conn.execute("SELECT * FROM public.users ORDER BY id").fetchall(),
        conn.execute("SELECT * FROM public.posts ORDER BY id").fetchall(),
        conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' ORDER BY 1"
        ).fetchall(),
    ]


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def test_user_tables_are_untouched_and_the_password_never_written(
    scratch_database: str,
    pg_connect: Any,
    tmp_path: Path,
) -> None:
    conn = pg_connect(scratch_database)
    conn.execute(USER_TABLES)
    before = snapshot(conn)
    secret = "pw-Never-Written-42"
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "psycopg", "-b", "asyncpg",
        "--out", str(tmp_path), "--postgres", with_password(scratch_database, secret),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = snapshot(conn)
    assert after[:2] == before[:2]
    assert [n for (n,) in after[2]] == sorted([n for (n,) in before[2]] + ["sqlabench"])
    comment = conn.execute("SELECT obj_description('sqlabench'::regnamespace)").fetchone()[0]
    assert comment.startswith("sqlabench:")
    conn.close()
    for path in tmp_path.rglob("*"):
        assert secret not in path.read_text()
    assert secret not in done.stdout + done.stderr


def test_a_foreign_schema_named_sqlabench_is_refused(
    scratch_database: str,
    pg_connect: Any,
    tmp_path: Path,
) -> None:
    conn = pg_connect(scratch_database)
    conn.execute("CREATE SCHEMA sqlabench; CREATE TABLE sqlabench.users (id int); ")
    conn.execute("INSERT INTO sqlabench.users VALUES (7)")
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "psycopg",
        "--out", str(tmp_path), "--postgres", scratch_database,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not made by sqlabench" in done.stderr
    assert conn.execute("SELECT id FROM sqlabench.users").fetchall() == [(7,)]
    conn.close()


def test_two_runs_on_one_database_cannot_overlap(
    scratch_database: str,
    pg_connect: Any,
    tmp_path: Path,
) -> None:
    from sqlabench.database import RUN_LOCK_KEY

    holder = pg_connect(scratch_database)  # stands in for a run in progress
    holder.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "psycopg",
        "--out", str(tmp_path), "--postgres", scratch_database,
    )  # fmt: skip
    holder.close()
    assert done.returncode == 2
    assert "another sqlabench run is using the database" in done.stderr
    assert list(tmp_path.iterdir()) == []


def with_query_password(url: str, password: str) -> str:
    return (
        make_url(url)
        .update_query_dict({"password": password})
        .render_as_string(hide_password=False)
    )


def written_text(*roots: Path) -> str:
    """Everything a run wrote under `roots`, binary files (charts) included, as text."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace")
        for r in roots
        for p in r.rglob("*")
        if p.is_file()
    )


def test_a_password_in_the_url_query_is_never_written(
    scratch_database: str, tmp_path: Path
) -> None:
    secret = "Query-Secret-7731"
    out, report = tmp_path / "out", tmp_path / "report"
    done = run_cli(
        "run", "engines", "--profile", "smoke", "-b", "psycopg", "-b", "asyncpg",
        "-k", "pk_lookup", "--out", str(out), "--report", str(report),
        "--postgres", with_query_password(scratch_database, secret),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(out.glob("*.json")) and (report / "report.md").exists()
    assert "password=***" in done.stdout
    assert secret not in done.stdout + done.stderr
    assert secret not in written_text(out, report)


@pytest.mark.parametrize(
    "given",
    [
        "host=/nonexistent password=Keyword-Secret-7731 dbname=x",
        "postgresql://u@127.0.0.1:1/db?password=Keyword-Secret-7731",
        "postgresql://u:Keyword-Secret-7731@127.0.0.1:1/db",
    ],
    ids=["libpq-keywords", "query", "userinfo"],
)
def test_a_password_in_bad_input_is_not_echoed(given: str, tmp_path: Path) -> None:
    done = run_cli("run", "engines", "-b", "psycopg", "--out", str(tmp_path), "--postgres", given)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Keyword-Secret-7731" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []
