"""Poll for run outcomes instead of sleeping a guessed amount (demo, tests, benchmarks)."""

import time
from collections.abc import Callable
from typing import TypeVar

from django.db import close_old_connections

from jobs.models import JobRun

T = TypeVar("T")


class WaitTimeout(Exception):
    """The awaited condition did not come true in time."""


def wait_until(
    condition: Callable[[], T], *, timeout_seconds: float, poll_seconds: float = 0.2, what: str = ""
) -> T:
    """Return the first truthy value of condition(), or raise WaitTimeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"gave up after {timeout_seconds}s waiting for {what or condition}")
        time.sleep(poll_seconds)
        close_old_connections()


def wait_for_run(run_id: int, *, timeout_seconds: float = 60) -> JobRun:
    """The JobRun once it has finished (succeeded, failed or skipped)."""

    def finished() -> JobRun | None:
        run = JobRun.objects.get(pk=run_id)
        return run if run.is_finished else None

    return wait_until(finished, timeout_seconds=timeout_seconds, what=f"run #{run_id} to finish")
