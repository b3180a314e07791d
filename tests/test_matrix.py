"""`sqlabench matrix`: SPECs parsed and checked before any work, environments cached, sets
run interleaved, merged and compared with the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from sqlabench import matrix
from sqlabench.errors import SqlabenchError


def test_a_spec_is_a_set_of_requirements_with_a_file_safe_label() -> None:
    spec = matrix.parse_spec("sqlalchemy==2.0.58  psycopg[binary]==3.2.10")
    assert spec.requirements == ("sqlalchemy==2.0.58", "psycopg[binary]==3.2.10")
    assert spec.label == "sqlalchemy-2.0.58+psycopg-binary-3.2.10"


@pytest.mark.parametrize("bad", ["", "sqlalchemy==", "sqlalchemy>>2"])
def test_a_spec_that_is_not_a_requirement_is_bad_input(bad: str) -> None:
    with pytest.raises(SqlabenchError, match="--with"):
        matrix.parse_spec(bad)


def test_the_sets_run_in_abba_order() -> None:
    assert matrix.interleaved(2, 3) == [(1, 0), (1, 1), (2, 1), (2, 0), (3, 0), (3, 1)]


def test_one_spec_or_twice_the_same_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    for specs in (["sqlalchemy==2.0.58"], ["sqlalchemy==2.0.58", "sqlalchemy==2.0.58"]):
        with pytest.raises(SqlabenchError, match=r"two --with SPECs or more|must differ"):
            matrix.run_matrix(["engines"], specs, [], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_spec_pip_cannot_install_fails_in_one_line_before_any_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(
        "matrix", "engines", "--profile", "smoke", "-b", "sqlite",
        "--with", "sqlalchemy==0.0.999", "--with", "sqlalchemy==2.1.9", "--out", str(out),
        env={matrix.CACHE_ENV: str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sqlabench: error: --with 'sqlalchemy==0.0.999': pip could not install")
    assert "sqlalchemy==0.0.999" in last and "Traceback" not in done.stderr
    assert not list(out.glob("**/*.json")), "no benchmark may run before every SPEC is built"
    assert not list((tmp_path / "cache").glob("*/sqlabench-matrix.json")), "no half-built env kept"


@pytest.mark.slow
def test_sqlalchemy_2_0_against_2_1_on_a_real_run(tmp_path: Path) -> None:
    """Builds two environments from the registry (minutes on a fresh machine)."""
    out = tmp_path / "out"
    done = run_cli(
        "matrix", "engines", "--profile", "smoke", "-b", "sqlite", "-k", "pk_lookup",
        "--with", "sqlalchemy==2.0.58", "--with", "sqlalchemy==2.1.9", "--passes", "2",
        "--out", str(out), timeout=1800,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    versions = {}
    for label in ("sqlalchemy-2.0.58", "sqlalchemy-2.1.9"):
        data = json.loads((out / f"{label}.json").read_text())
        versions[label] = data["sqlabench"]["sqlalchemy"]
        assert data["sqlabench"]["repeat"] == 2
        assert all(b["extra_info"]["verified"] for b in data["benchmarks"])
    assert versions == {"sqlalchemy-2.0.58": "2.0.58", "sqlalchemy-2.1.9": "2.1.9"}
    verdict = json.loads((out / "compare.json").read_text())
    assert verdict["base"]["spec"] == "sqlalchemy==2.0.58"
    [other] = verdict["comparisons"]
    assert other["spec"] == "sqlalchemy==2.1.9" and other["changes"]
    assert any("sqlalchemy differs" in w for w in other["warnings"])
    assert (out / "compare-sqlalchemy-2.1.9.png").exists()
