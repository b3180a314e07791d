import pytest
from sqlalchemy.engine import make_url

from sqlabench.masking import mask_text, mask_url, url_secrets


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql://alice:s3cret@db.example:5432/app")
    assert "s3cret" not in masked
    assert masked == "postgresql://alice:***@db.example:5432/app"


def test_mask_text_hides_urls_keywords_and_known_passwords() -> None:
    message = (
        'connection to "postgresql+psycopg://bob:hunter2@h/db" failed: '
        "password=hunter2 user=bob; the password hunter2 was rejected"
    )
    masked = mask_text(message, "hunter2")
    assert "hunter2" not in masked
    assert "bob" in masked


def test_mask_text_leaves_plain_text_alone() -> None:
    assert mask_text("no secrets here") == "no secrets here"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db?password=s3cret-Q&application_name=x",
        "postgresql://u@h/db?sslpassword=s3cret-Q",
        "mysql://root@h/db?passwd=s3cret-Q",
        "postgresql://u:s3cret-Q@h/db?password=s3cret-Q",
    ],
)
def test_mask_url_hides_secret_query_parameters(url: str) -> None:
    masked = mask_url(url)
    assert "s3cret-Q" not in masked
    assert masked.startswith(url.split("://")[0] + "://")
    assert "***" in masked
    assert list(url_secrets(make_url(url))) and "s3cret-Q" in url_secrets(make_url(url))


def test_mask_url_keeps_harmless_query_parameters() -> None:
    masked = mask_url("postgresql://u@h/db?host=/tmp/pg&application_name=x")
    assert masked == "postgresql://u@h/db?application_name=x&host=%2Ftmp%2Fpg"


@pytest.mark.parametrize(
    "text",
    [
        "host=/tmp/pg password=s3cret-K dbname=x",
        "host=/tmp/pg password='s3cret K' dbname=x",
        "could not connect: postgresql://u@h/db?password=s3cret-K&x=1 refused",
        "PASSWORD = s3cret-K",
    ],
)
def test_mask_text_hides_libpq_keyword_strings(text: str) -> None:
    masked = mask_text(text)
    assert "s3cret" not in masked
    assert "***" in masked


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("password=abc,def rest", "def"),
        ("password='it\\'s' rest", "s'"),
        ("{'password': 'x1y'}", "x1y"),
        ('{"password": "q2w"}', "q2w"),
        ("PGPASSWORD=zz9 psql", "zz9"),
    ],
)
def test_mask_text_hides_the_whole_value_in_other_forms(text: str, secret: str) -> None:
    assert secret not in mask_text(text)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://postgres:postgres@localhost/postgres",
            "postgresql://postgres:***@localhost/postgres",
        ),
        ("postgresql://u:1@h/db1", "postgresql://u:***@h/db1"),
    ],
)
def test_mask_url_replaces_the_password_part_only(url: str, masked: str) -> None:
    """A password that is also a user, database or scheme name leaves those intact."""
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("postgresql://h/db?password=x&sslmode=require&application_name=a", "&sslmode=require"),
        ("password= \nnext line", "next line"),
    ],
)
def test_masking_stops_at_the_end_of_the_secret(text: str, kept: str) -> None:
    assert kept in mask_text(text)
