"""The shared models and the seeded, deterministic data every question measures against.

The data is a pure function of its size, so any benchmark can check what it read against what
must be there without asking the database again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SEED = 20261124


class Base(AsyncAttrs, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean)

    posts: Mapped[list[Post]] = relationship(back_populates="author")
    addresses: Mapped[list[Address]] = relationship(back_populates="user")


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    author: Mapped[User] = relationship(back_populates="posts")
    comments: Mapped[list[Comment]] = relationship(back_populates="post")


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(String(200))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)

    post: Mapped[Post] = relationship(back_populates="comments")


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    user: Mapped[User] = relationship(back_populates="addresses")


class BulkRow(Base):
    """The bulk_insert question's target table; its key is generated when none is given."""

    __tablename__ = "bulk_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200))


UserRow = tuple[int, str, str, bool]
BulkTuple = tuple[int, str, int, str]
PostRow = tuple[int, str, int]
ChildRow = tuple[int, str, int]


@dataclass(frozen=True)
class DataSize:
    users: int
    posts_per_user: int
    comments_per_post: int = 0
    addresses_per_user: int = 0

    @property
    def posts(self) -> int:
        return self.users * self.posts_per_user

    @property
    def comments(self) -> int:
        return self.posts * self.comments_per_post

    @property
    def addresses(self) -> int:
        return self.users * self.addresses_per_user


def user_row(user_id: int) -> UserRow:
    """The seeded values of one user: every fourth user is inactive."""
    return (user_id, f"user {user_id}", f"user{user_id}@example.com", user_id % 4 != 0)


def post_row(post_id: int, size: DataSize) -> PostRow:
    """The seeded values of one post; posts are numbered author by author."""
    return (post_id, f"post {post_id}", (post_id - 1) // size.posts_per_user + 1)


def comment_row(comment_id: int, size: DataSize) -> ChildRow:
    """The seeded values of one comment; comments are numbered post by post."""
    return (comment_id, f"comment {comment_id}", (comment_id - 1) // size.comments_per_post + 1)


def address_row(address_id: int, size: DataSize) -> ChildRow:
    """The seeded values of one address; addresses are numbered user by user."""
    user_id = (address_id - 1) // size.addresses_per_user + 1
    return (address_id, f"address{address_id}@example.com", user_id)


def bulk_row(row_id: int) -> BulkTuple:
    """One row to bulk-insert: (id, name, value, note); `value` is unique below 1,000,003."""
    return (row_id, f"row {row_id}", row_id * 7 % 1_000_003, f"note {row_id % 97}")


def bulk_rows(count: int) -> list[BulkTuple]:
    return [bulk_row(i) for i in range(1, count + 1)]


def iter_users(size: DataSize) -> Iterator[UserRow]:
    return (user_row(i) for i in range(1, size.users + 1))


def iter_posts(size: DataSize) -> Iterator[PostRow]:
    return (post_row(i, size) for i in range(1, size.posts + 1))


def iter_comments(size: DataSize) -> Iterator[ChildRow]:
    return (comment_row(i, size) for i in range(1, size.comments + 1))


def iter_addresses(size: DataSize) -> Iterator[ChildRow]:
    return (address_row(i, size) for i in range(1, size.addresses + 1))


def active_users(size: DataSize) -> list[UserRow]:
    return [row for row in iter_users(size) if row[3]]


def seeded_ids(count: int, upper: int, salt: str = "") -> list[int]:
    """`count` ids in 1..upper drawn from the fixed seed (the same list on every run)."""
    rng = random.Random(f"{SEED}:{salt}")
    return [rng.randint(1, upper) for _ in range(count)]
