"""plot and report: files from small synthetic results, valid images, notes and exit codes."""

from __future__ import annotations

import copy
import json
import random
import re
import struct
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from conftest import run_cli
from sqlabench import plot, report, results
from sqlabench.questions import pools as pools_question
from test_results import make_result

BACKENDS = [
    results.BackendInfo(
        "sqlite", "sqlite", "sync", "sqlite+pysqlite", "sqlite3", "3.40", "3.40", "file",
    ),
    results.BackendInfo(
        "psycopg", "postgresql", "sync", "postgresql+psycopg", "psycopg", "3.3", "16.2",
        "postgresql://bench:***@db/x",
    ),
    results.BackendInfo(
        "asyncpg", "postgresql", "async", "postgresql+asyncpg", "asyncpg", "0.30", "16.2",
        "postgresql://bench:***@db/x",
    ),
]  # fmt: skip


def bench(name: str, median: float, seed: int, **info: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    data = sorted(median * rng.lognormvariate(0, 0.05) for _ in range(9))
    return {
        "name": name,
        "fullname": name,
        "extra_info": {"verified": True, **info},
        "stats": {"median": data[4], "q1": data[2], "q3": data[6], "data": data},
    }


def engines() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for backend, mode in (("sqlite", "sync"), ("psycopg", "sync"), ("asyncpg", "async")):
        for workload in ("pk_lookup", "request"):
            for layer, cost in (("raw", 1.0), ("core", 1.6), ("orm", 2.4)):
                out.append(
                    bench(
                        f"test_engines[{backend}-{layer}-{workload}]", 1e-4 * cost, len(out),
                        question="engines", backend=backend, mode=mode, layer=layer,
                        workload=workload, statements=1,
                    )
                )  # fmt: skip
    return out


def loading() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for shape in ("one_to_many", "nested"):
        for strategy, per_parent in (("lazy", 1e-3), ("selectinload", 2e-4), ("joinedload", 3e-4)):
            for parents in (10, 100):
                statements = 1 + parents if strategy == "lazy" else 2
                out.append(
                    bench(
                        f"test_loading[psycopg-{shape}-{strategy}-P{parents}-F3]",
                        per_parent * parents, len(out), question="loading", backend="psycopg",
                        mode="sync", shape=shape, strategy=strategy, parents=parents, fanout=3,
                        statements=statements, rows_fetched=parents * 4,
                    )
                )  # fmt: skip
    return out


def bulk_insert() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for backend, ceiling in (("sqlite", "raw_executemany"), ("psycopg", "copy")):
        for strategy, rate in ((ceiling, 500_000.0), ("core_executemany", 90_000.0),
                               ("orm_add_all_flush", 12_000.0)):  # fmt: skip
            out.append(
                bench(
                    f"test_bulk_insert[{backend}-{strategy}-10000]", 10_000 / rate, len(out),
                    question="bulk_insert", backend=backend, mode="sync", strategy=strategy,
                    rows=10_000, page_size=1000, ceiling=strategy == ceiling, rows_per_s=rate,
                    ratio_to_ceiling=rate / 500_000, statements=1,
                )
            )  # fmt: skip
    return out


def pools() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for size in (None, 1, 5):
        for concurrency in (1, 4, 16):
            rps = 300.0 * min(concurrency, size or 1) if size else 120.0
            out.append(
                bench(
                    f"test_pools[psycopg-{'nullpool' if size is None else f'pool{size}+0'}"
                    f"-c{concurrency}]",
                    concurrency / rps, len(out), question="pools", backend="psycopg", mode="sync",
                    pool_class="NullPool" if size is None else "QueuePool", pool_size=size,
                    max_overflow=0, pool_timeout=30.0, concurrency=concurrency,
                    throughput_rps=rps,
                    latency_ms={"p50": 2.0, "p95": 5.0, "p99": 8.0 * concurrency},
                    pool_wait_ms={"p50": 0.1, "p99": 1.0, "total_per_round": 2.0},
                    timeouts=0, connections=size or concurrency, statements=2,
                )
            )  # fmt: skip
    return out


def synthetic(
    questions: tuple[str, ...], started: str = "2026-11-25T00:00:00+00:00"
) -> dict[str, Any]:
    makers = {"engines": engines, "loading": loading, "bulk_insert": bulk_insert, "pools": pools}
    data = make_result(
        questions=list(questions), started=started, backends=[b.__dict__ for b in BACKENDS]
    )
    data["benchmarks"] = [b for q in questions for b in makers[q]()]
    return data


def write(tmp_path: Path, data: dict[str, Any], stem: str = "run") -> Path:
    return results.write_new(data, tmp_path / "runs", stem)


def is_png(path: Path) -> bool:
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    width, height = struct.unpack(">II", head[16:24])
    return bool(width > 300 and height > 200)


def is_svg(path: Path) -> bool:
    return ElementTree.parse(path).getroot().tag.endswith("svg")


ALL = ("engines", "loading", "bulk_insert", "pools")


def test_a_png_and_an_svg_per_question(tmp_path: Path) -> None:
    path = write(tmp_path, synthetic(ALL))
    done = run_cli("plot", str(path), "--out", str(tmp_path / "charts"))
    assert done.returncode == 0, done.stderr
    charts = plot.plot_results([results.load(path)], tmp_path / "charts")
    for question in ALL:
        files = charts.by_question[question]
        assert any(p.suffix == ".png" and is_png(p) for p in files), question
        assert any(p.suffix == ".svg" and is_svg(p) for p in files), question
    assert charts.notes == []


def test_questions_without_data_are_skipped_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, synthetic(("engines",)))
    done = run_cli("plot", str(path), "--out", str(tmp_path / "charts"))
    assert done.returncode == 0, done.stderr
    assert "engines.png" in done.stdout
    for question in ("loading", "bulk_insert", "pools"):
        assert f"note: {question}: no data in the given results, no chart" in done.stdout
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == ["engines.png", "engines.svg"]


def test_two_runs_add_a_forest_plot_and_a_history(tmp_path: Path) -> None:
    first = synthetic(("engines",))
    second = copy.deepcopy(synthetic(("engines",), started="2026-11-26T00:00:00+00:00"))
    for b in second["benchmarks"][:2]:
        b["stats"]["data"] = [x * 1.5 for x in b["stats"]["data"]]
        b["stats"]["median"] *= 1.5
    paths = [write(tmp_path, first, "a"), write(tmp_path, second, "b")]
    charts = plot.plot_results([results.load(p) for p in paths], tmp_path / "charts")
    assert is_png(charts.by_question["compare"][0])
    assert is_png(charts.by_question["history"][0])


def test_no_password_or_url_reaches_a_chart(tmp_path: Path) -> None:
    data = synthetic(ALL)
    path = write(tmp_path, data)
    charts = plot.plot_results([results.load(path)], tmp_path / "charts")
    for svg in (p for p in charts.written if p.suffix == ".svg"):
        text = svg.read_text(encoding="utf-8")
        assert "postgresql://" not in text and "bench:" not in text


def test_report_states_answers_and_links_its_charts(tmp_path: Path) -> None:
    path = write(tmp_path, synthetic(ALL))
    out = tmp_path / "report"
    done = run_cli("report", str(path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "For loading 100 parents with 3 children each (one-to-many) on psycopg" in text
    assert "selectinload was the fastest strategy" in text
    assert re.search(r"lazy loading took [45]\.\d× its time", text)
    # the rate at the headline time, not the last process's rows_per_s
    [copy] = [b for b in results.load(path).benchmarks
              if b.extra_info.get("strategy") == "copy" and b.backend == "psycopg"]  # fmt: skip
    rate = copy.extra_info["rows"] / copy.stats["median"]
    assert f"copy (the ceiling) inserted {rate:,.0f} rows/s" in text
    for chart in ("engines.png", "loading-psycopg.png", "bulk_insert.png", "pools.png"):
        assert f"]({chart})" in text and (out / chart).is_file()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 4
    assert "## Environment" in text and "psycopg 3.3" in text


def test_report_answers_only_from_verified_results(tmp_path: Path) -> None:
    data = synthetic(("loading",))
    for b in data["benchmarks"]:
        if b["extra_info"]["strategy"] == "selectinload":
            b["extra_info"]["verified"] = False
    section = report.build([results.load(write(tmp_path, data))], tmp_path / "r").sections[0]
    assert "joinedload was" in section.answer and "selectinload" not in section.answer


@pytest.mark.parametrize("command", ["plot", "report"])
def test_garbage_input_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text(json.dumps({"hello": "world"}))
    for path in (garbage, tmp_path / "missing.json"):
        done = run_cli(command, str(path), "--out", str(tmp_path / "out"))
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("sqlabench: error:")
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, synthetic(("engines",)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_cli("plot", str(path), "--out", str(blocker / "charts"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_run_with_report_writes_the_charts_and_report_of_that_run(tmp_path: Path) -> None:
    """What make bench does at its end: the run, then its report (sqlite only, smoke)."""
    done = run_cli(
        "run", "engines", "-b", "sqlite", "--profile", "smoke", "-k", "pk_lookup",
        "--out", str(tmp_path / "runs"), "--report", str(tmp_path / "latest"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "latest" / "report.md").is_file()
    assert is_png(tmp_path / "latest" / "engines.png")
    assert "wrote " in done.stdout and "report.md" in done.stdout


def pool_point(
    size: int, concurrency: int, rounds: list[float], backend: str = "psycopg", **info: Any
) -> dict[str, Any]:
    rounds = sorted(rounds)
    return bench(
        f"test_pools[{backend}-pool{size}+0-c{concurrency}]", concurrency / rounds[1], size,
        question="pools", backend=backend, mode="sync", pool_class="QueuePool", pool_size=size,
        max_overflow=0, pool_timeout=30.0, concurrency=concurrency,
        throughput_rps=rounds[len(rounds) // 2], throughput_rps_rounds=rounds,
        latency_ms={"p50": 10.0, "p95": 12.0, "p99": 15.0},
        pool_wait_ms={"p50": 0.0, "p99": 1.0, "total_per_round": 2.0},
        timeouts=0, connections=min(size, concurrency), statements=2,
        **{"client_cpu": 0.5, **info},
    )  # fmt: skip


def pools_result(points: list[dict[str, Any]]) -> results.ResultFile:
    data = make_result(questions=["pools"], backends=[b.__dict__ for b in BACKENDS])
    data["benchmarks"] = points
    return results.parse(data, "synthetic")


def test_the_pools_answer_names_the_smallest_pool_within_the_noise_of_the_best() -> None:
    """Pool 5 serves 700 requests/s and pool 20 720, both within 3% over their rounds: the
    answer is any pool of 5 or more, not "pool 20 is best"."""
    result = pools_result(
        [
            pool_point(1, 16, [98, 100, 102]),
            pool_point(5, 16, [680, 700, 720]),
            pool_point(20, 16, [700, 720, 740]),
        ]
    )
    [curve] = pools_question.pool_curves(result)
    assert curve.knee == 5 and curve.tolerance == pytest.approx(0.05)
    # Little's law from the smallest pool's own time (10 ms, no wait): 5 / 10 ms, 16 / 10 ms
    assert curve.expected_rps(5) == pytest.approx(500) and curve.expected_rps(20) == 1600
    answer = pools_question.answer(result)
    assert "on psycopg any pool of 5 or more serves within 5% of the best (720 requests/s)" in (
        answer
    )
    assert "pool 1: 100, 86% less" in answer


def test_a_difference_larger_than_the_noise_separates_pools() -> None:
    """Pool 5 is 11% below pool 20 and its rounds spread 6%: pool 5 is not enough, and with
    16 clients pool 20 is a connection per client."""
    result = pools_result(
        [
            pool_point(1, 16, [98, 100, 102]),
            pool_point(5, 16, [600, 640, 680]),
            pool_point(20, 16, [700, 720, 740]),
        ]
    )
    answer = pools_question.answer(result)
    assert "only a connection per client (pool 20) served within 6% of the best" in answer
    assert "pool 5: 640, 11% less" in answer


def test_a_difference_inside_the_noise_does_not() -> None:
    """The same medians, but pool 5's rounds spread 22%: the data cannot tell 5 from 20."""
    result = pools_result(
        [
            pool_point(1, 16, [98, 100, 102]),
            pool_point(5, 16, [500, 640, 780]),
            pool_point(20, 16, [700, 720, 740]),
        ]
    )
    assert "any pool of 5 or more serves within 22% of the best" in pools_question.answer(result)


def test_throughput_still_rising_at_the_largest_pool_is_said() -> None:
    result = pools_result(
        [
            pool_point(1, 64, [98, 100, 102]),
            pool_point(5, 64, [440, 450, 460]),
            pool_point(20, 64, [1380, 1400, 1420], client_cpu=0.97),
        ]
    )
    answer = pools_question.answer(result)
    assert "throughput still rose at the largest pool measured (20: 1,400 requests/s" in answer
    assert "the client, not the pool, is the limit" in answer
    assert "a larger pool may serve more" not in answer


def test_any_pool_or_more_is_said_only_when_every_larger_pool_served_as_well() -> None:
    """Pool 5 is within the noise of the best (pool 10) but pool 20 served 29% less: "any
    pool of 5 or more" would be false."""
    result = pools_result(
        [
            pool_point(1, 16, [99, 100, 101]),
            pool_point(5, 16, [396, 400, 404]),
            pool_point(10, 16, [416, 420, 424]),
            pool_point(20, 16, [297, 300, 303]),
        ]
    )
    answer = pools_question.answer(result)
    assert "or more" not in answer
    assert (
        "pool 5 served within 5% of the best (420 requests/s), but not every larger one "
        "did (pool 20: 300)"
    ) in answer


def test_a_pools_chart_and_a_sentence_per_rtt(tmp_path: Path) -> None:
    """The grid at 2 ms and over the local connection are two answers: the 2 ms one first (it
    is where the pool is the limit), each chart titled with its RTT."""
    points = [
        pool_point(size, 16, [r * 0.98, r, r * 1.02], rtt_ms=rtt)
        for rtt, rates in ((2.0, (100, 450, 900)), (0.0, (700, 720, 730)))
        for size, r in zip((1, 5, 20), rates, strict=True)
    ]
    result = pools_result(points)
    answer = pools_question.answer(result)
    at_2 = answer.index("With 16 concurrent clients at 2 ms RTT, on psycopg only a connection")
    local = answer.index("With 16 concurrent clients over a local connection, on psycopg any pool")
    assert at_2 < local
    assert "any pool of 1 or more serves within 5% of the best (730 requests/s)" in answer
    charts = plot.plot_results([result], tmp_path)
    names = sorted(p.name for p in charts.by_question["pools"] if p.suffix == ".png")
    assert names == ["pools-rtt0ms.png", "pools.png"]
    for rtt, where in ((2.0, "pools at 2 ms RTT:"), (0.0, "pools over a local connection:")):
        figure = pools_question.pools_figure(result, rtt)
        assert figure is not None
        assert figure.get_suptitle().startswith(where)
        plot.pyplot().close(figure)
