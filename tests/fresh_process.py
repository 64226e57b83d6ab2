"""Run Python code in a fresh process, as a command or a qcluster would start: the settings
and environment it reads at import are its own, not the test process's."""

import os
import subprocess
import sys
from collections.abc import Mapping

from django.conf import settings


def run_python(
    code: str, *args: str, env: Mapping[str, str | None], timeout: float = 120
) -> subprocess.CompletedProcess:
    """`python -c code args` from the project folder with this environment plus `env` (a None
    value removes the variable); output captured as text, the exit status left to the caller."""
    full_env = {**os.environ, **env}
    for name in [name for name, value in full_env.items() if value is None]:
        del full_env[name]
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=settings.BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
