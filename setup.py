"""The one compiled part of sqlabench: valgrind client requests for the counting pass.

Optional: where no C compiler is found the build goes on without it, and `--instructions`
then counts Python calls only and says why. Everything else is configured in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sqlabench._callgrind",
            sources=["src/sqlabench/_callgrind.c"],
            include_dirs=["src/sqlabench"],
            depends=["src/sqlabench/_valgrind/valgrind.h", "src/sqlabench/_valgrind/callgrind.h"],
            optional=True,
        )
    ]
)
