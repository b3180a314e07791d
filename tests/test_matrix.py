"""`sqlabench matrix`: SPECs parsed and checked before any work, environments cached, sets
run interleaved, merged and compared with the first."""

from __future__ import annotations

import json
import sys
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
    assert list((tmp_path / "cache").iterdir()) == [], "a half-built environment was kept"


def test_every_environment_is_built_before_any_benchmark_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    def build(spec: matrix.Spec, root: Path, say: object) -> Path:
        events.append(f"build {spec.text}")
        if spec.text == "broken==1":
            raise SqlabenchError("--with 'broken==1': pip could not install it")
        return Path(sys.executable)

    def run_child(command: list[str], *rest: object) -> tuple[int, str]:
        events.append("run")
        return 0, ""

    monkeypatch.setattr(matrix, "ensure_env", build)
    monkeypatch.setattr(matrix, "_run_child", run_child)
    with pytest.raises(SqlabenchError, match="broken==1"):
        matrix.run_matrix(["engines"], ["good==1", "broken==1"], [], tmp_path / "out")
    assert events == ["build good==1", "build broken==1"]


def test_the_sets_run_are_merged_and_compared_and_earlier_passes_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop, merge and compare for real, with this environment standing in for each SPEC."""
    monkeypatch.setattr(matrix, "ensure_env", lambda spec, root, say: Path(sys.executable))
    out = tmp_path / "out"
    args = ["--profile", "smoke", "-b", "sqlite", "-k", "raw and pk_lookup"]
    for _ in range(2):  # the second matrix into the same DIR must not merge the first's passes
        outcome = matrix.run_matrix(
            ["engines"], ["sqlalchemy>=2.0", "sqlalchemy>=2.0.13"], args, out, passes=2,
            say=lambda line: None,
        )  # fmt: skip
    # a result is never replaced: the second matrix's merged files get a suffix
    assert [p.name for p in outcome.results] == [
        "sqlalchemy-2.0-2.json",
        "sqlalchemy-2.0.13-2.json",
    ]
    for path in outcome.results:
        data = json.loads(path.read_text())
        assert data["sqlabench"]["repeat"] == 2, "passes of an earlier matrix were merged in"
        [bench] = data["benchmarks"]
        assert bench["extra_info"]["verified"] and bench["extra_info"]["passes"] == 2
    verdict = json.loads(outcome.compare_json.read_text())
    assert verdict["base"]["spec"] == "sqlalchemy>=2.0"
    assert [c["spec"] for c in verdict["comparisons"]] == ["sqlalchemy>=2.0.13"]
    assert not outcome.failures and not outcome.missing


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
