"""Test-only job for the reaper's crash test; registered in the test process and its qclusters."""

import os
import time
from pathlib import Path
from typing import Any

from jobs.registry import job
from jobs.runs.current import current_run


def _mark(path: str, event: str) -> None:
    run = current_run()
    with open(path, "a") as out:
        out.write(f"{event} run={run.pk if run else '-'} pid={os.getpid()}\n")


@job(
    "tests.marked_sleep",
    lock_key=lambda kwargs: f"marked:{kwargs['name']}",
    timeout_seconds=120,
)
def marked_sleep(*, name: str, seconds: float, marker: str) -> dict[str, Any]:
    """Writes `start` and `done` lines to `marker`: how often the work began and finished."""
    _mark(marker, "start")
    time.sleep(seconds)
    _mark(marker, "done")
    return {"name": name, "slept": seconds, "marker": Path(marker).name}
