"""pytest entry point for `pytest benchmarks`: the pools question lives in the package."""

from sqlabench.questions.pools import *  # noqa: F403
