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
