"""sqlabench.files: the one atomic writer (results, archived baselines, charts, reports)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from sqlabench import files
from sqlabench.errors import SqlabenchError


def test_overwrite_replaces_and_leaves_nothing_beside(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    assert files.write_atomic(path, "first ✓", overwrite=True) == path
    assert files.write_atomic(path, b"second", overwrite=True) == path
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_without_overwrite_an_existing_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    files.write_atomic(path, "kept", overwrite=False)
    with pytest.raises(files.NameTaken, match="never overwritten"):
        files.write_atomic(path, "lost", overwrite=False)
    assert path.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_the_first_free_name_is_taken(tmp_path: Path) -> None:
    names = [tmp_path / "a.json", tmp_path / "a-2.json", tmp_path / "a-3.json"]
    assert files.write_first_free(names, "1") == names[0]
    assert files.write_first_free(names, "2") == names[1]
    assert [n.read_text() for n in names[:2]] == ["1", "2"]
    files.write_first_free(names, "3")
    with pytest.raises(files.NameTaken, match="the 2 other names exist"):
        files.write_first_free(names, "4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.json", "a-3.json", "a.json"]


def test_a_function_writes_into_the_file_and_its_failure_leaves_no_file(tmp_path: Path) -> None:
    def draw(fh: BinaryIO) -> None:
        fh.write(b"<svg/>")

    path = tmp_path / "chart.svg"
    files.write_atomic(path, draw, overwrite=True)
    assert path.read_bytes() == b"<svg/>"

    def broken(fh: BinaryIO) -> None:
        fh.write(b"half")
        raise RuntimeError("drawing failed")

    with pytest.raises(RuntimeError):
        files.write_atomic(path, broken, overwrite=True)
    assert path.read_bytes() == b"<svg/>"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.svg"]


def test_permissions_follow_the_umask_not_mkstemp(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = files.write_atomic(tmp_path / "x", "x", overwrite=False)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_unwritable_place_is_one_sqlabench_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SqlabenchError, match=f"cannot write {blocker / 'x'}: "):
        files.write_atomic(blocker / "x", "x", overwrite=True)
