"""The published page is generated from the result files it names, and a stale page is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from sqlabench import publish, results
from sqlabench.errors import SqlabenchError

PAGE = ROOT / "results" / "README.md"


def test_the_committed_page_is_what_its_result_files_give() -> None:
    """Fails when an answer, the machine or a run line on the page no longer matches the
    files it names (re-run the command on the page's first line)."""
    assert publish.check(PAGE) == []


def test_a_figure_typed_into_the_page_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "published", copy / "published")
    page = copy / "README.md"
    text = PAGE.read_text(encoding="utf-8")
    assert "6.6×" in text  # the loading answer's lazy ratio, computed from the full run
    page.write_text(text.replace("6.6×", "3.1×", 1), encoding="utf-8")
    done = run_cli("publish", "--check", "--out", str(page))
    assert done.returncode == 1
    assert "3.1×" in done.stdout and "6.6×" in done.stdout
    page.write_text(text, encoding="utf-8")
    same = run_cli("publish", "--check", "--out", str(page))
    assert same.returncode == 0, same.stdout + same.stderr


def test_the_machine_is_described_from_what_the_file_recorded() -> None:
    [full] = (ROOT / "results" / "published").glob("*-full.json.gz")
    result = results.load(full)
    cpu = result.raw["machine_info"]["cpu"]
    described = publish.machine(result)
    assert described.startswith(f"{cpu['brand_raw']}, {cpu['hz_advertised'][0] / 1e9:.2f} GHz")
    assert f"{cpu['count']} cores" in described
    assert described in PAGE.read_text(encoding="utf-8")


def test_a_page_not_made_by_publish_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("# hand-written\n", encoding="utf-8")
    with pytest.raises(SqlabenchError, match="not made by sqlabench publish"):
        publish.check(page)
