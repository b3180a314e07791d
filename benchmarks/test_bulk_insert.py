"""pytest entry point for `pytest benchmarks`: the bulk_insert question lives in the package."""

from sqlabench.questions.bulk_insert import *  # noqa: F403
