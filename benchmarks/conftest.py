"""Scenario modules run under sqlabench's pytest plugin (options, databases, result metadata)."""

from sqlabench.plugin import *  # noqa: F403
