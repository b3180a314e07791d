import pytest

from sqlabench import questions
from sqlabench.errors import SqlabenchError


def test_engines_is_discovered_with_its_question() -> None:
    found = questions.discover()
    assert "engines" in found
    assert found["engines"].summary.endswith("?")


def test_all_means_every_question() -> None:
    assert [q.name for q in questions.resolve(["all"])] == list(questions.discover())


def test_unknown_question_and_profile() -> None:
    with pytest.raises(SqlabenchError, match="unknown question 'nosuchquestion'"):
        questions.resolve(["nosuchquestion"])
    with pytest.raises(SqlabenchError, match="unknown profile 'huge'"):
        questions.check_profile("huge")
