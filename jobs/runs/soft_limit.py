"""The soft time limit of the current run: past it, the job stops at its next safe point.

A safe point is a `checkpoint()` (every `report_progress` is one) outside the
transactions the job itself opened, so work the progress counted is never undone.
"""

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from jobs.exceptions import SoftTimeLimitExceeded


@dataclass(frozen=True)
class _SoftLimit:
    """The current run's soft time limit: when it passes, and the transaction depth the run
    started at (a safe point is outside every transaction the job itself opened)."""

    deadline: datetime
    seconds: int
    atomic_depth: int


_soft_limit: ContextVar[_SoftLimit | None] = ContextVar("soft_limit", default=None)


def start_soft_limit(seconds: int) -> Any:
    """Arm the soft time limit of the run starting now (jobs.runner); returns a reset token."""
    deadline = timezone.now() + timedelta(seconds=seconds)
    return _soft_limit.set(_SoftLimit(deadline, seconds, len(connection.atomic_blocks)))


def reset_soft_limit(token: Any) -> None:
    _soft_limit.reset(token)


def checkpoint() -> None:
    """A safe point: past the run's soft time limit, raise SoftTimeLimitExceeded here.

    Called by report_progress; a job that reports nothing may call it between units of
    work. Inside a transaction the job opened it does nothing: the next call outside one stops.
    """
    limit = _soft_limit.get()
    if limit is None or timezone.now() < limit.deadline:
        return
    if len(connection.atomic_blocks) > limit.atomic_depth:
        return
    raise SoftTimeLimitExceeded(
        f"soft time limit of {limit.seconds} s reached: stopped at a safe point"
    )
