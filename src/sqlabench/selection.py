"""`sqlabench run --only ID`: exactly the benchmarks named, by id.

pytest's `-k` matches each word of its expression as a substring of a test's name *and* of its
module, class and markers, so `-k "test_bulk_insert[sqlite-raw_executemany-1000]"` is exact only
by luck and an id with a space or a quote cannot be written at all. `--only` takes a benchmark's
id as a result file and `compare` name it (`test_engines[sqlite-raw-pk_lookup]`) and selects
exactly that benchmark; a value that is no benchmark's id is read as a -k expression matched
against ids only. Repeat it to select several (any of them). A value that selects nothing is
bad input: the run stops before any benchmark, and says which.

The timed passes register an `OnlyIds` themselves; the counting processes load this module
with `-p sqlabench.selection` and pass the values as `--sqlabench-only`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

ONLY_OPTION = "--sqlabench-only"


def _expression_matches(value: str, name: str) -> bool | None:
    """Whether the -k expression `value` matches the id `name`; None if it is no expression."""
    from _pytest.mark.expression import Expression

    try:
        expression = Expression.compile(value)
    except SyntaxError:
        return None

    def matcher(ident: str, /, **kwargs: str | int | bool | None) -> bool:
        return not kwargs and ident.lower() in name.lower()

    return expression.evaluate(matcher)


def select(values: Sequence[str], names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The names `values` select (in their order), and the values that select none."""
    known = set(names)
    chosen: set[str] = set()
    unknown: list[str] = []
    for value in dict.fromkeys(values):
        if value in known:
            hits = {value}
        else:
            hits = {name for name in names if _expression_matches(value, name)}
        if not hits:
            unknown.append(value)
        chosen |= hits
    return [name for name in names if name in chosen], unknown


class OnlyIds:
    """A pytest plugin: keep the collected benchmarks `values` select, deselect the rest.

    When a value selects none, every benchmark is deselected (nothing runs) and the value is
    kept in `unknown` for the caller to report.
    """

    def __init__(self, values: Sequence[str]) -> None:
        self.values = tuple(values)
        self.unknown: list[str] = []

    @pytest.hookimpl(tryfirst=True)  # before -k: a value is matched against every id
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        chosen, self.unknown = select(self.values, [item.name for item in items])
        keep = set() if self.unknown else set(chosen)
        deselected = [item for item in items if item.name not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.name in keep]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        ONLY_OPTION, action="append", default=[], metavar="ID",
        help="only this benchmark (an id, or a -k expression over ids); repeat for several",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    values = config.getoption(ONLY_OPTION)
    if values:
        config.pluginmanager.register(OnlyIds(values), "sqlabench-only")


def child_args(values: Sequence[str]) -> list[str]:
    """The arguments that make a separate pytest process select the same benchmarks."""
    if not values:
        return []
    return ["-p", "sqlabench.selection", *(f"{ONLY_OPTION}={value}" for value in values)]
