"""The question registry: built-in, installed and users' own question modules, and that each
one brings its tables, chart and answer to every view of a result."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from sqlabench import questions, results, summary
from sqlabench.errors import SqlabenchError

PUBLISHED = ROOT / "results" / "published"
EXAMPLE = ROOT / "examples" / "pagination.py"


def test_engines_is_discovered_with_its_question() -> None:
    found = questions.discover()
    assert "engines" in found
    assert found["engines"].summary.endswith("?")


def test_all_means_every_built_in_question_in_name_order() -> None:
    """Runs of `all` keep the order every earlier run had, so their results stay mergeable."""
    assert [q.name for q in questions.resolve(["all"])] == [
        "bulk_insert", "engines", "loading", "pools",
    ]  # fmt: skip


def test_unknown_question_and_profile() -> None:
    with pytest.raises(SqlabenchError, match="unknown question 'nosuchquestion'"):
        questions.resolve(["nosuchquestion"])
    with pytest.raises(SqlabenchError, match="unknown profile 'huge'"):
        questions.check_profile("huge")


@pytest.fixture(scope="module")
def example_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example question, run once (smoke, SQLite) for the tests that read its result."""
    out = tmp_path_factory.mktemp("example")
    done = run_cli("run", str(EXAMPLE), "--profile", "smoke", "-b", "sqlite", "--out", str(out))
    assert done.returncode == 0, done.stderr
    [path] = out.glob("*.json")
    return path


@pytest.mark.parametrize("name", [*questions.discover(), "examples/pagination.py"])
def test_every_registered_question_has_tables_a_chart_and_an_answer(
    name: str, example_result: Path
) -> None:
    """Every question discovery finds (and the example): from a real result (the published
    run, or the question's own): tables with rows, at least one figure drawn and a sentence
    that is not a no-data fallback."""
    from matplotlib.figure import Figure

    from sqlabench import plot

    [question] = questions.resolve([name])
    question.check_declares()
    shown = questions.presentation(question)
    assert shown is not None and shown.title.endswith("?")
    own = sorted((PUBLISHED / question.name).glob("*.json"))
    if question.path == EXAMPLE:
        own = [example_result]
    result = results.load(own[-1] if own else next(PUBLISHED.glob("*-full.json.gz")))
    tables = shown.tables(result)
    assert tables and all(t.rows for t in tables)
    figures = [fig for _, fig in shown.figures(result)]
    assert figures and all(isinstance(fig, Figure) for fig in figures)
    for fig in figures:
        plot.pyplot().close(fig)
    answer = shown.answer(result)
    assert answer.endswith(".") and not answer.startswith("No ")


def test_a_users_question_module_is_listed_run_verified_charted_and_reported(
    tmp_path: Path,
) -> None:
    """examples/pagination.py, named by path, with no other file edited."""
    listed = run_cli("list", str(EXAMPLE))
    assert listed.returncode == 0, listed.stderr
    assert "pagination" in listed.stdout and "Offset or keyset" in listed.stdout

    out, report_dir = tmp_path / "runs", tmp_path / "report"
    done = run_cli(
        "run", str(EXAMPLE), "--profile", "smoke", "-b", "sqlite", "--out", str(out),
        "--report", str(report_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = out.glob("*-pagination-smoke.json")
    data = json.loads(path.read_text())
    benches = data["benchmarks"]
    # two pages × two strategies on SQLite, every one checked against the seeded posts
    assert sorted(b["name"] for b in benches) == [
        "test_pagination[sqlite-keyset-page0]", "test_pagination[sqlite-keyset-page24]",
        "test_pagination[sqlite-offset-page0]", "test_pagination[sqlite-offset-page24]",
    ]  # fmt: skip
    assert all(b["extra_info"]["verified"] for b in benches)
    assert {(b["extra_info"]["statements"], b["extra_info"]["rows_fetched"]) for b in benches} == {
        (1, 20)
    }
    # relative to where the run ran (the checkout): no home directory in a published result
    assert data["sqlabench"]["question_sources"] == {"pagination": "examples/pagination.py"}
    assert "pagination: median per operation" in done.stdout  # its own table, not the generic

    assert (report_dir / "pagination-sqlite.png").stat().st_size > 10_000
    text = (report_dir / "report.md").read_text()
    assert "## pagination: Offset or keyset pagination?" in text
    assert "**Answer.** Backend sqlite, page 0:" in text
    assert "![pagination](pagination-sqlite.png)" in text
    assert "`sqlabench run examples/pagination.py --profile smoke`" in text


PARTIAL = '''
"""Is a question that forgot its answer refused before it runs?"""
QUESTION = "partial"
PROFILES = {"smoke": 1, "quick": 1, "full": 1}
TITLE = "Partial?"

def tables(result): return []
def figures(result): return []

def test_partial(benchmark, sqlabench_run):
    benchmark(lambda: None)
'''


def test_a_question_module_missing_part_of_its_presentation_is_refused_before_running(
    tmp_path: Path,
) -> None:
    module = tmp_path / "partial.py"
    module.write_text(PARTIAL)
    done = run_cli("run", str(module), "-b", "sqlite", "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"the question module {module} does not declare answer" in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_result_whose_question_module_is_gone_still_has_its_generic_table(
    tmp_path: Path,
) -> None:
    """A result outlives the file that made it: plot and report fall back, and say so."""
    module = tmp_path / "pagination.py"
    shutil.copy(EXAMPLE, module)
    out = tmp_path / "runs"
    done = run_cli(
        "run", str(module), "--profile", "smoke", "-b", "sqlite", "-k", "page0", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    module.write_text("this is no longer Python (\n")
    [path] = out.glob("*.json")
    assert [t.title for t in summary.tables(results.load(path))] == [
        "pagination: median per operation"
    ]
    module.unlink()
    tables = summary.tables(results.load(path))
    assert [t.title for t in tables] == ["pagination: median per operation"]
    reported = run_cli("report", str(path), "--out", str(tmp_path / "report"))
    assert reported.returncode == 0, reported.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "(no answer: its module is not to be found here, or gives none)" in text
    assert "pagination: no chart (its module is not to be found here, or draws none)" in text


def test_an_installed_question_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A package's `sqlabench.questions` entry point: listed, resolved and presented by name."""
    import importlib.metadata

    package = tmp_path / "mybench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, package / "pagination.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(
        name="pagination", value="mybench.pagination", group=questions.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: [entry] if group == questions.ENTRY_POINT_GROUP else [],
    )
    found = questions.discover()
    assert list(found)[-1] == "pagination" and found["pagination"].module == "mybench.pagination"
    assert found["pagination"].path == package / "pagination.py"
    assert questions.resolve(["pagination"]) == [found["pagination"]]
    assert "pagination" in [q.name for q in questions.resolve(["all"])]
    shown = questions.presentation(found["pagination"])
    assert shown is not None and shown.title == "Offset or keyset pagination?"

    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: [importlib.metadata.EntryPoint("gone", "mybench.gone", group)],
    )
    # one broken package leaves its question out, says so once, and breaks no other command
    assert "gone" not in questions.discover() and "engines" in questions.discover()
    with pytest.raises(SqlabenchError, match=re.escape("names the module 'mybench.gone'")):
        questions.resolve(["gone"])
    misnamed = importlib.metadata.EntryPoint("paging", "mybench.pagination", "sqlabench.questions")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [misnamed])
    assert "paging" not in questions.discover()
    warned = capsys.readouterr().err.splitlines()
    assert len([w for w in warned if "'gone'" in w]) == 1  # said once, not per discovery
    with pytest.raises(SqlabenchError, match="declares QUESTION = 'pagination'"):
        questions.resolve(["paging"])


def test_the_scenario_hash_covers_what_is_measured_not_how_it_is_shown(tmp_path: Path) -> None:
    """Redrawing a chart or rewording a comment leaves two runs like for like; changing the
    operation (or a constant it reads) does not."""
    module = tmp_path / "pagination.py"
    original = EXAMPLE.read_text()

    def digest(text: str) -> str:
        module.write_text(text)
        return questions.from_path(module).source_hash()

    base = digest(original)
    assert (
        digest(original.replace('TITLE = "Offset or keyset pagination?"', 'TITLE = "Pages?"'))
        == base
    )
    assert (
        digest(
            original.replace(
                "def answer(result: ResultFile) -> str:\n",
                "def answer(result: ResultFile) -> str:\n    # reworded\n    print()\n",
            )
        )
        == base
    )
    assert digest(original.replace("# the previous page's last id", "# the last id")) == base
    assert digest(original.replace("PAGE_SIZE = 20", "PAGE_SIZE = 21")) != base
    assert digest(original.replace("Post.id > case.page", "Post.id >= case.page")) != base


@pytest.mark.parametrize("name", [*questions.discover(), "examples/pagination.py"])
def test_every_key_a_question_records_is_in_its_typed_record(
    name: str, example_result: Path
) -> None:
    """A question's `INFO` declares every `extra_info` key its benchmarks wrote in a real result
    (the harness's own apart), and every key the result schema requires of it."""
    from typing import get_type_hints

    from sqlabench.results import BenchmarkInfo, HarnessInfo

    [question] = questions.resolve([name])
    record = questions.load(question).INFO
    declared = set(get_type_hints(record))
    assert set(get_type_hints(BenchmarkInfo)) <= declared
    own = sorted((PUBLISHED / question.name).glob("*.json"))
    if question.path == EXAMPLE:
        own = [example_result]
    result = results.load(own[-1] if own else next(PUBLISHED.glob("*-full.json.gz")))
    written = {
        key for b in result.benchmarks if b.question == question.name for key in b.extra_info
    }
    assert written, f"no {question.name} benchmark in the result read"
    assert written - set(get_type_hints(HarnessInfo)) <= declared, written - declared
    schema = json.loads((ROOT / "docs" / "result.schema.json").read_text())
    for rule in schema["$defs"]["extraInfo"]["allOf"]:
        if rule["if"]["properties"]["question"]["const"] == question.name:
            assert set(rule["then"]["required"]) <= declared


def test_a_users_chart_named_like_another_questions_is_not_drawn_over_it(
    tmp_path: Path, example_result: Path
) -> None:
    module = tmp_path / "pagination.py"
    module.write_text(EXAMPLE.read_text().replace('f"{QUESTION}-{backend}",', '"engines",'))
    data = json.loads(example_result.read_text())
    data["sqlabench"]["question_sources"] = {"pagination": str(module)}
    data["sqlabench"]["profile"] = "full"  # plot compares the two newest runs: like for like
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(data))
    published = next(PUBLISHED.glob("*-full.json.gz"))
    charts = tmp_path / "charts"
    done = run_cli("plot", str(published), str(mine), "--out", str(charts))
    assert done.returncode == 0, done.stderr
    assert "pagination: its chart 'engines' has the name of engines's, not drawn" in done.stdout
    assert [p.name for p in charts.glob("engines.*")] and not list(charts.glob("pagination*"))
