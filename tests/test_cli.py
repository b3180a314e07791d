"""The CLI as users meet it: help, listing, and bad input answered in one line with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli


def assert_one_line_error(done, contains: str) -> None:  # type: ignore[no-untyped-def]
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert contains in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_help_and_list() -> None:
    done = run_cli("--help")
    assert done.returncode == 0 and "run" in done.stdout and "list" in done.stdout
    done = run_cli("run", "--help")
    assert done.returncode == 0 and "--profile" in done.stdout and "--postgres" in done.stdout
    done = run_cli("list")
    assert done.returncode == 0
    for name in ("engines", "sqlite", "aiosqlite", "psycopg", "psycopg_async", "asyncpg", "quick"):
        assert name in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nosuchquestion"], "unknown question 'nosuchquestion'"),
        (["run"], "name a question"),
        (["run", "engines", "--backend", "oracle"], "unknown backend 'oracle'"),
        (["run", "engines", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "engines", "-b", "psycopg", "--postgres", "nonsense"], "not a database URL"),
        (
            ["run", "engines", "-b", "psycopg", "--postgres", "mysql://r@h/d"],
            "not a PostgreSQL URL",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = run_cli(*args, "--out", str(tmp_path)) if len(args) > 1 else run_cli(*args)
    assert_one_line_error(done, message)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_masks_the_password(tmp_path: Path) -> None:
    done = run_cli(
        "run", "engines", "-b", "psycopg", "--out", str(tmp_path),
        "--postgres", "postgresql://bob:hunter2@127.0.0.1:1/db",
    )  # fmt: skip
    assert_one_line_error(done, "cannot connect to PostgreSQL")
    assert "hunter2" not in done.stderr + done.stdout
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = run_cli("run", "engines", "-b", "sqlite", "--out", str(blocker / "runs"))
    assert_one_line_error(done, "cannot write results")
    assert blocker.read_text() == "x"
