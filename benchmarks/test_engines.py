"""pytest entry point for `pytest benchmarks`: the engines question lives in the package."""

from sqlabench.questions.engines import *  # noqa: F403
