from sqlabench.masking import mask_text, mask_url


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
