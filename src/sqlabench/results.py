"""The result file: pytest-benchmark's JSON plus a typed, versioned `sqlabench` object.

This module is the only one that reads or writes result files. It owns `SCHEMA_VERSION`, refuses
files it cannot read with a one-line reason, and writes atomically without ever replacing a file.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from sqlabench import files
from sqlabench.errors import SqlabenchError

SCHEMA_VERSION = 1
COUNT_FIELDS = ("instructions", "py_calls")
"""What the counting pass adds to a benchmark's extra_info (see sqlabench.counting)."""
RESULT_KEY = "sqlabench"


@dataclass(frozen=True)
class BackendInfo:
    name: str
    server: str
    mode: str
    dialect: str
    driver: str
    driver_version: str
    server_version: str
    url: str
    """Where the database was, with any password masked."""
    settings: dict[str, Any] = field(default_factory=dict)


class BenchmarkInfo(TypedDict, total=False):
    """What every benchmark records in `extra_info`; a question's own record extends it."""

    question: str
    backend: str
    mode: str
    verified: bool
    """Set last, after every check passed: a benchmark that did less never has it True."""


class HeadlineTime(TypedDict):
    """A benchmark's headline time per operation (seconds) and its uncertainty.

    Each pass runs in its own worker process; `median` is the median of the processes'
    medians and `ci95` a 95% percentile-bootstrap interval of it over processes (None with one
    process: rounds inside one process do not sample what moves between processes). With few
    processes the bootstrap cannot reach 95%: with 3 it is the range of their medians, which
    holds the true median about 75% of the time, with 5 about 94% (tests/test_results.py).
    """

    median: float
    ci95: list[float] | None
    processes: int


class HarnessInfo(TypedDict, total=False):
    """What the harness adds to a benchmark's `extra_info`, whatever its question."""

    time: HeadlineTime
    passes: int
    pass_numbers: list[int]
    pass_rounds: list[int]
    pass_medians: list[float]
    instructions: float
    py_calls: float
    rtt_seen_ms: dict[str, float]
    proxy_cpu: float


@dataclass(frozen=True)
class RunInfo:
    """Provenance and shape of one run; everything compare, plot and report need to know."""

    schema_version: int
    questions: tuple[str, ...]
    profile: str
    started: str
    finished: str
    complete: bool
    suite_version: str
    suite_commit: str
    python: str
    sqlalchemy: str
    machine: str
    backends: tuple[BackendInfo, ...]
    rtt_ms: float = 0.0
    """Round-trip latency injected between client and PostgreSQL (0: none)."""
    repeat: int = 1
    """Passes over the selection, run one after another; rounds are joined across them."""
    rtt_measured_ms: float | None = None
    """Median SELECT 1 round trip through the injected path, measured before the run."""
    rtt_base_ms: float | None = None
    """The same straight to the server, without the injected latency."""
    scenario_hashes: dict[str, str] = field(default_factory=dict)
    question_sources: dict[str, str] = field(default_factory=dict)
    """Where each question's module is (a module name, or the file a user ran by path), so
    that plot and report find its tables, chart and answer ({} in older files)."""
    harness_hash: str = ""
    """A hash of the sources on every timed path (measure, plugin, scenario, backends,
    models): two runs whose harness differs are not like for like ("" in older files)."""
    failures: tuple[dict[str, str], ...] = ()
    interrupted: tuple[dict[str, Any], ...] = ()
    """Benchmarks a stop signal cut short, left out of `benchmarks`: name, rounds done, why."""
    skipped: tuple[dict[str, str], ...] = ()
    """Benchmarks left out on purpose, each with its reason."""
    injected_slowdown: float = 0.0
    """A slowdown added on purpose to every timed operation (gate calibration only; 0: none)."""
    injected_work: float = 0.0
    """CPU work added on purpose inside every operation, as a fraction of its own counted
    instructions (gate calibration only; 0: none)."""
    counting: dict[str, Any] | None = None
    """The counting pass (`run --instructions`): its tool, calls counted, benchmarks counted,
    seconds, and its error if it failed (None: no counting pass)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["questions"] = list(self.questions)
        data["backends"] = [asdict(b) for b in self.backends]
        data["failures"] = list(self.failures)
        data["interrupted"] = list(self.interrupted)
        data["skipped"] = list(self.skipped)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        fields = dict(data)
        fields["questions"] = tuple(fields.get("questions", ()))
        fields["backends"] = tuple(BackendInfo(**b) for b in fields.get("backends", ()))
        fields["failures"] = tuple(fields.get("failures", ()))
        fields["interrupted"] = tuple(fields.get("interrupted", ()))
        fields["skipped"] = tuple(fields.get("skipped", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in fields.items() if k in known})


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark of a run: its name, what it measured and its timing statistics (seconds)."""

    name: str
    fullname: str
    extra_info: dict[str, Any]
    stats: dict[str, Any]

    @property
    def question(self) -> str:
        return str(self.extra_info.get("question", ""))

    @property
    def backend(self) -> str:
        return str(self.extra_info.get("backend", ""))

    @property
    def median(self) -> float:
        """The headline time per operation: the median over worker processes where the
        result has it (`extra_info["time"]`), else pytest-benchmark's median over rounds."""
        headline = self.extra_info.get("time")
        if isinstance(headline, dict) and isinstance(headline.get("median"), int | float):
            return float(headline["median"])
        return float(self.stats["median"])

    @property
    def process_medians(self) -> list[float]:
        """Each worker process's median (one per pass), or [] in results that lack them."""
        return [float(x) for x in self.extra_info.get("pass_medians") or []]

    @property
    def data(self) -> list[float]:
        return [float(x) for x in self.stats.get("data", [])]


@dataclass(frozen=True)
class ResultFile:
    path: Path | None
    info: RunInfo
    benchmarks: tuple[BenchmarkResult, ...]
    raw: dict[str, Any]


def merge_passes(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """One pytest-benchmark JSON from several passes over the same benchmarks.

    Each benchmark's rounds (`stats.data`) are joined across the passes and its summary
    statistics recomputed over all of them, as are its per-round lists (`extra_info` keys
    ending in `_rounds`); its `extra_info` is otherwise the last pass's, `verified`
    only if every pass verified it, with `passes`, each pass's number of rounds in
    `pass_rounds` and its median in `pass_medians`. Benchmarks keep the order they first
    appeared in.
    """
    import numpy as np

    merged = dict(passes[-1])
    by_name: dict[str, list[dict[str, Any]]] = {}
    numbers: dict[str, list[int]] = {}
    for number, one in enumerate(passes, 1):
        for bench in one.get("benchmarks", []):
            by_name.setdefault(bench["name"], []).append(bench)
            numbers.setdefault(bench["name"], []).append(number)
    benchmarks = []
    for name, copies in by_name.items():
        bench = dict(copies[-1])
        data = [x for c in copies for x in c["stats"].get("data", [])]
        stats = dict(bench["stats"])
        if data:
            values = np.asarray(data)
            q1, median, q3 = (float(v) for v in np.percentile(values, [25, 50, 75]))
            stats.update(
                data=data, rounds=len(data), min=float(values.min()), max=float(values.max()),
                mean=float(values.mean()), median=median, q1=q1, q3=q3, iqr=q3 - q1,
                stddev=float(values.std(ddof=1)) if len(data) > 1 else 0.0,
                total=float(values.sum()), ops=1 / float(values.mean()),
            )  # fmt: skip
        bench["stats"] = stats
        info = dict(bench.get("extra_info") or {})
        # a pass without the counting pass (a rerun of a few benchmarks) keeps the counts of
        # the last pass that had them: counts do not vary between passes of the same code
        for key in COUNT_FIELDS:
            counted = [c["extra_info"][key] for c in copies if key in (c.get("extra_info") or {})]
            if counted and key not in info:
                info[key] = counted[-1]
        # a question's per-round lists (`*_rounds`, e.g. pools' throughput per round) join
        # across the passes as the rounds themselves do
        for key, value in list(info.items()):
            if key.endswith("_rounds") and key != "pass_rounds" and isinstance(value, list):
                info[key] = [x for c in copies for x in (c.get("extra_info") or {}).get(key) or []]
        info["verified"] = all((c.get("extra_info") or {}).get("verified") for c in copies)
        info["passes"] = len(copies)
        # a pass is the unit a gate can test (rounds within one pass share its drift): the
        # rounds of each pass, in order, so compare can split stats.data back into passes
        info["pass_rounds"] = [len(c["stats"].get("data", [])) for c in copies]
        info["pass_medians"] = [
            float(np.median(c["stats"]["data"]))
            if c["stats"].get("data")
            else float(c["stats"]["median"])
            for c in copies
        ]
        info["time"] = headline_time(info["pass_medians"])
        # which passes those were: a benchmark that failed in one pass has none from it, and
        # a ratio pairs two benchmarks' processes by pass, never by position
        info["pass_numbers"] = numbers[name]
        bench["extra_info"] = info
        benchmarks.append(bench)
    merged["benchmarks"] = benchmarks
    return merged


BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 15
"""Fixed: the same result file always gives the same intervals (reports are regenerated)."""


def headline_time(process_medians: Sequence[float]) -> HeadlineTime:
    """The median of the processes' medians, with its bootstrap interval over processes."""
    import numpy as np

    values = np.asarray(process_medians, dtype=float)
    median = float(np.median(values))
    if len(values) < 2:
        return {"median": median, "ci95": None, "processes": len(values)}
    picks = np.random.default_rng(BOOTSTRAP_SEED).integers(
        0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values))
    )
    low, high = np.percentile(np.median(values[picks], axis=1), [2.5, 97.5])
    return {"median": median, "ci95": [float(low), float(high)], "processes": len(values)}


@dataclass(frozen=True)
class Ratio:
    """How many times one benchmark's headline time another's is, with a 95% interval."""

    value: float
    low: float | None = None
    high: float | None = None

    @property
    def known(self) -> bool:
        """Whether there is an interval (both measured in two or more processes)."""
        return self.low is not None and self.high is not None


def ratio(a: BenchmarkResult, b: BenchmarkResult) -> Ratio:
    """a's headline time over b's, with a bootstrap interval over their processes.

    Benchmarks of one run were measured in the same worker processes, pass by pass: the
    processes are resampled in pairs, so what moved a whole process moves both sides alike
    and drops out of the ratio. Otherwise (different numbers of processes) each side is
    resampled on its own. No interval where a side has a single process.
    """
    import numpy as np

    value = a.median / b.median
    first, second = np.asarray(a.process_medians), np.asarray(b.process_medians)
    if len(first) < 2 or len(second) < 2:
        return Ratio(value)
    paired = len(first) == len(second)
    pass_a, pass_b = a.extra_info.get("pass_numbers"), b.extra_info.get("pass_numbers")
    if isinstance(pass_a, list) and isinstance(pass_b, list):
        # the processes both ran: pass k of one beside pass k of the other
        common = sorted(set(pass_a) & set(pass_b))
        paired = len(common) >= 2 and len(pass_a) == len(first) and len(pass_b) == len(second)
        if paired:
            first = np.asarray([first[pass_a.index(k)] for k in common])
            second = np.asarray([second[pass_b.index(k)] for k in common])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, len(first), size=(BOOTSTRAP_RESAMPLES, len(first)))
    if paired:
        others = picks
    else:
        others = rng.integers(0, len(second), size=(BOOTSTRAP_RESAMPLES, len(second)))
    ratios = np.median(first[picks], axis=1) / np.median(second[others], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Ratio(value, float(low), float(high))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse(data: Any, source: str) -> ResultFile:
    """A result from decoded JSON, or a one-line SqlabenchError saying why it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise SqlabenchError(f"{source}: not a benchmark result (no 'benchmarks' list)")
    info = data.get(RESULT_KEY)
    if not isinstance(info, dict):
        raise SqlabenchError(f"{source}: not a sqlabench result (no '{RESULT_KEY}' object)")
    version = info.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SqlabenchError(
            f"{source}: result schema version {version!r} is not supported "
            f"(this sqlabench reads version {SCHEMA_VERSION})"
        )
    try:
        run_info = RunInfo.from_json(info)
        benchmarks = tuple(
            BenchmarkResult(
                name=str(b["name"]),
                fullname=str(b.get("fullname", b["name"])),
                extra_info=dict(b.get("extra_info") or {}),
                stats=dict(b["stats"]),
            )
            for b in data["benchmarks"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SqlabenchError(f"{source}: malformed sqlabench result ({exc})") from None
    return ResultFile(None, run_info, benchmarks, data)


def load(path: str | os.PathLike[str]) -> ResultFile:
    """Read a result file, or raise a one-line SqlabenchError saying why it cannot be read."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        # a published result is kept gzipped (.json.gz); known by its magic bytes
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except FileNotFoundError:
        raise SqlabenchError(f"{p}: no such result file") from None
    except IsADirectoryError:
        raise SqlabenchError(f"{p}: is a directory, not a result file") from None
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise SqlabenchError(f"{p}: cannot read ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SqlabenchError(f"{p}: not JSON (line {exc.lineno}: {exc.msg})") from None
    result = parse(data, str(p))
    return ResultFile(p, result.info, result.benchmarks, result.raw)


def check_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Fail now, before any work, if result files could not be written into `directory`.

    Nothing is created: a missing directory is made only when the first result is written.
    """
    out = Path(directory)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SqlabenchError(f"cannot write results to {out}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SqlabenchError(f"cannot write results to {out}: {existing} is not writable")
    return out


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create `directory` if needed and prove a file can be written there."""
    out = check_writable_dir(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-", delete=True):
            pass
    except OSError as exc:
        raise SqlabenchError(f"cannot write results to {out}: {exc.strerror or exc}") from None
    return out


def write_new(data: dict[str, Any], directory: str | os.PathLike[str], stem: str) -> Path:
    """Write `data` as a new file `<stem>.json` (or `<stem>-N.json`) in `directory`.

    The file appears complete or not at all (written to a temporary file, then hard-linked into
    place), and an existing file is never replaced: linking fails if the name is taken.
    """
    out = ensure_writable_dir(directory)
    payload = json.dumps(data, indent=2, sort_keys=False) + "\n"
    names = [out / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json") for n in range(1, 1000)]
    try:
        return files.write_first_free(names, payload)
    except files.NameTaken:
        raise SqlabenchError(f"cannot find a free result file name for {stem} in {out}") from None


MERGE_MUST_MATCH = (
    "profile", "questions", "suite_commit", "scenario_hashes", "rtt_ms",
    "harness_hash", "python", "sqlalchemy", "injected_slowdown", "injected_work",
)  # fmt: skip
"""What result files must share to be joined: the same benchmarks of the same code."""


def instant(value: str, source: str) -> datetime:
    """A result's `started` or `finished` as an aware datetime (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise SqlabenchError(f"{source}: not a timestamp: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def merge_files(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """One result from several result files of the same benchmarks, run one after another.

    The files are taken in the order they started. Each benchmark's rounds are joined with
    `merge_passes`; its `passes`, `pass_rounds` and `pass_medians` count every pass of every
    file: a file that itself joined several passes contributes each of them (a file older
    than `pass_rounds` contributes its rounds as one block, with their median, though its
    `passes` still counts them all). The run's provenance is the first file's;
    `repeat` is the total of passes, `started` the earliest, `finished` the latest, `complete`
    only if every file is, `failures` and `skipped` those of all files. Files whose profile,
    questions, suite commit, scenario sources or injected latency differ are refused.
    """
    if not paths:
        raise SqlabenchError("name at least one result file to merge")
    seen: dict[Path, str] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise SqlabenchError(f"{p}: given twice (each run may be merged once)")
        seen[key] = str(p)
    loaded = [load(p) for p in paths]
    first = loaded[0]
    for other in loaded[1:]:
        for name in MERGE_MUST_MATCH:
            mine, theirs = getattr(first.info, name), getattr(other.info, name)
            if mine != theirs:
                raise SqlabenchError(
                    f"cannot merge {other.path} with {first.path}: {name} differs "
                    f"({theirs!r} vs {mine!r}); only runs of the same benchmarks can be merged"
                )
    import numpy as np

    ordered = sorted(loaded, key=lambda r: instant(r.info.started, str(r.path)))
    merged = merge_passes([r.raw for r in ordered])
    by_file = [{b["name"]: b for b in r.raw["benchmarks"]} for r in ordered]
    for bench in merged["benchmarks"]:
        passes, rounds, medians = 0, [], []
        for benchmarks in by_file:
            copy = benchmarks.get(bench["name"])
            if copy is None:
                continue
            info, stats = copy.get("extra_info") or {}, copy["stats"]
            passes += int(info.get("passes", 1))
            data = [float(x) for x in stats.get("data", [])]
            blocks = info.get("pass_rounds")
            if not (
                isinstance(blocks, list)
                and all(isinstance(n, int) and n > 0 for n in blocks)
                and sum(blocks) == len(data) > 0
            ):
                blocks = [len(data)]  # one pass, or a file from before pass_rounds
            known = info.get("pass_medians")
            if isinstance(known, list) and len(known) == len(blocks):
                medians += [float(x) for x in known]
            elif data:
                medians += [float(np.median(x)) for x in np.split(data, np.cumsum(blocks)[:-1])]
            else:
                medians.append(float(stats["median"]))
            rounds += blocks
        bench["extra_info"].pop("pass_numbers", None)  # one file's numbering, not the merge's
        bench["extra_info"].update(
            passes=passes, pass_rounds=rounds, pass_medians=medians,
            # the headline over every pass of every file, not one value per file
            time=headline_time(medians),
        )  # fmt: skip
    infos = [r.info for r in ordered]
    # each backend as the earliest file that ran it recorded it
    backends = {b.name: b for i in reversed(infos) for b in i.backends}
    names = dict.fromkeys(b.name for i in infos for b in i.backends)
    info = replace(
        infos[0],
        finished=max(
            (i.finished for i in infos), key=lambda v: instant(v, "a merged result's finished")
        ),
        complete=all(i.complete for i in infos),
        repeat=sum(i.repeat for i in infos),
        backends=tuple(backends[n] for n in names),
        failures=tuple(f for i in infos for f in i.failures),
        skipped=tuple(s for i in infos for s in i.skipped),
        # the counts come from the file that counted (merge_passes keeps them): so does
        # what says how they were counted
        counting=next((i.counting for i in reversed(infos) if i.counting), None),
    )
    merged[RESULT_KEY] = info.to_json()
    return merged


def merged_stem(data: dict[str, Any]) -> str:
    """The file name (without .json) of a merged result: its first start, questions, profile."""
    info = RunInfo.from_json(data[RESULT_KEY])
    started = instant(info.started, "merged result").astimezone(UTC)
    return f"{started:%Y%m%dT%H%M%SZ}-{'+'.join(info.questions)}-{info.profile}-merged"
