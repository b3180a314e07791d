"""The loading question: exact statement and row counts, and the same graph for every strategy."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from conftest import load_scenario, run_cli
from sqlabench.backends import REGISTRY
from sqlabench.models import Address, Comment, Post, User

loading = load_scenario("loading")


@pytest.mark.parametrize(
    ("shape", "strategy", "parents", "fanout", "statements", "rows"),
    [
        ("one_to_many", "lazy", 4, 3, 1 + 4, 4 + 12),
        ("one_to_many", "immediateload", 4, 3, 1 + 4, 4 + 12),
        ("one_to_many", "selectinload", 4, 3, 2, 4 + 12),
        ("one_to_many", "selectinload", 501, 1, 1 + 2, 501 + 501),
        ("one_to_many", "joinedload", 4, 3, 1, 12),
        ("one_to_many", "subqueryload", 4, 3, 2, 4 + 12),
        ("one_to_many", "contains_eager", 4, 3, 1, 12),
        ("many_to_one", "lazy", 4, 3, 1 + 4, 12 + 4),
        ("many_to_one", "selectinload", 501, 1, 1 + 2, 501 + 501),
        ("many_to_one", "joinedload", 4, 3, 1, 12),
        ("nested", "lazy", 4, 3, 1 + 4 + 12, 4 + 12 + 36),
        ("nested", "selectinload", 501, 1, 1 + 2 + 2, 501 * 3),
        ("nested", "subqueryload", 4, 3, 3, 4 + 12 + 36),
        ("nested", "joinedload", 4, 3, 1, 36),
        ("two_collections", "lazy", 4, 3, 1 + 8, 4 + 24),
        ("two_collections", "selectinload", 4, 3, 3, 4 + 24),
        ("two_collections", "subqueryload", 4, 3, 3, 4 + 24),
        ("two_collections", "joinedload", 4, 3, 1, 4 * 3 * 3),
    ],
)
def test_expected_counts(
    shape: str, strategy: str, parents: int, fanout: int, statements: int, rows: int
) -> None:
    case = loading.Case(REGISTRY["sqlite"], shape, strategy, loading.Size(parents, fanout))
    assert case.statements(chunk=500) == statements
    assert case.rows_fetched() == rows


def test_chunk_size_is_read_from_sqlalchemy() -> None:
    assert loading.selectin_chunk_size() == 500


def transient_graph(size: Any, drop_comment: bool = False) -> list[User]:
    users = []
    for u in range(1, size.users + 1):
        user = User(id=u, name=f"user {u}", email="e", is_active=True)
        for p in range((u - 1) * size.posts_per_user + 1, u * size.posts_per_user + 1):
            post = Post(id=p, title=f"post {p}")
            c = size.comments_per_post
            post.comments = [
                Comment(id=i, body=f"comment {i}") for i in range((p - 1) * c + 1, p * c + 1)
            ]
            user.posts.append(post)
        a = size.addresses_per_user
        user.addresses = [
            Address(id=i, email=f"address{i}@example.com")
            for i in range((u - 1) * a + 1, u * a + 1)
        ]
        users.append(user)
    if drop_comment:
        users[-1].posts[-1].comments.pop()
    return users


def test_a_graph_missing_one_row_fails_verification() -> None:
    size = loading.data_size(loading.Size(3, 2))
    expected = loading.expected_graph("nested", size)
    assert loading.graph("nested", transient_graph(size)) == expected
    assert loading.graph("nested", transient_graph(size, drop_comment=True)) != expected


# (statements, rows the database sent) per load in the smoke profile, by hand: 4 parents with
# 3 children (and 3 grandchildren per child in `nested`), and 501 parents with 1, which only
# selectinload runs: SQLAlchemy's IN lists hold 500 keys, so its second relationship query
# needs two. Lazy loading: one SELECT per parent per relationship (nested: per child too);
# selectinload and subqueryload: one per relationship; joined: one, with the parents repeated
# per child row (and two collections multiply: 4 x 3 x 3 rows).
SMOKE_COUNTS = {
    ("one_to_many", "lazy", 4): (5, 16), ("one_to_many", "immediateload", 4): (5, 16),
    ("one_to_many", "selectinload", 4): (2, 16), ("one_to_many", "subqueryload", 4): (2, 16),
    ("one_to_many", "joinedload", 4): (1, 12), ("one_to_many", "contains_eager", 4): (1, 12),
    # posts' authors: 12 posts, 4 distinct authors (repeats come from the identity map)
    ("many_to_one", "lazy", 4): (5, 16), ("many_to_one", "immediateload", 4): (5, 16),
    ("many_to_one", "selectinload", 4): (2, 16), ("many_to_one", "subqueryload", 4): (2, 16),
    ("many_to_one", "joinedload", 4): (1, 12), ("many_to_one", "contains_eager", 4): (1, 12),
    ("nested", "lazy", 4): (17, 52), ("nested", "immediateload", 4): (17, 52),
    ("nested", "selectinload", 4): (3, 52), ("nested", "subqueryload", 4): (3, 52),
    ("nested", "joinedload", 4): (1, 36), ("nested", "contains_eager", 4): (1, 36),
    ("two_collections", "lazy", 4): (9, 28), ("two_collections", "immediateload", 4): (9, 28),
    ("two_collections", "selectinload", 4): (3, 28),
    ("two_collections", "subqueryload", 4): (3, 28),
    ("two_collections", "joinedload", 4): (1, 36),
    ("two_collections", "contains_eager", 4): (1, 36),
    ("one_to_many", "selectinload", 501): (3, 1002),
    ("many_to_one", "selectinload", 501): (3, 1002),
    ("nested", "selectinload", 501): (5, 1503),
    ("two_collections", "selectinload", 501): (5, 1503),
}  # fmt: skip


def test_loading_end_to_end_counts_and_checksums(tmp_path: Path) -> None:
    done = run_cli(
        "run", "loading", "--profile", "smoke", "--out", str(tmp_path),
        "-b", "sqlite", "-b", "psycopg", "-b", "asyncpg",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert data["sqlabench"]["failures"] == []
    checksums: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    strategies: dict[tuple[str, str], set[str]] = defaultdict(set)
    chunk = loading.selectin_chunk_size()
    for b in data["benchmarks"]:
        info = b["extra_info"]
        assert info["verified"] is True, b["name"]
        case = loading.Case(
            REGISTRY[info["backend"]], info["shape"], info["strategy"],
            loading.Size(info["parents"], info["fanout"]),
        )  # fmt: skip
        # what the run counted, held to counts worked out by hand (not the scenario's formula)
        expected = SMOKE_COUNTS[(info["shape"], info["strategy"], info["parents"])]
        assert (info["statements"], info["rows_fetched"]) == expected, b["name"]
        assert case.statements(chunk) == info["statements"]
        checksums[(info["shape"], info["parents"], info["fanout"])].add(info["graph_checksum"])
        strategies[(info["backend"], info["shape"])].add(info["strategy"])
    # one graph per shape and size: the same for every strategy and every backend
    assert all(len(sums) == 1 for sums in checksums.values())
    assert all(
        {"lazy", "selectinload", "joinedload", "subqueryload"} <= found
        for found in strategies.values()
    )
    assert len(strategies) == 3 * 4
    assert "loading: median time per load" in done.stdout
