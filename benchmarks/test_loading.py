"""pytest entry point for `pytest benchmarks`: the loading question lives in the package."""

from sqlabench.questions.loading import *  # noqa: F403
