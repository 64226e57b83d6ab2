"""The soft time limit of the current run: past it, the job stops at its next safe point, a
`checkpoint()` outside the transactions it opened (so work its progress counted stays)."""

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from jobs.exceptions import SoftTimeLimitExceeded


@dataclass(frozen=True)
class _SoftLimit:
    """When the current run's soft time limit passes, and the transaction depth it started at."""

    deadline: datetime
    seconds: int
    atomic_depth: int


_soft_limit: ContextVar[_SoftLimit | None] = ContextVar("soft_limit", default=None)


def start_soft_limit(seconds: int) -> Any:
    """Arm the soft time limit of the run starting now (jobs.runner); returns a reset token."""
    deadline = timezone.now() + timedelta(seconds=seconds)
    return _soft_limit.set(_SoftLimit(deadline, seconds, len(connection.atomic_blocks)))


reset_soft_limit = _soft_limit.reset


def checkpoint() -> None:
    """A safe point (every report_progress is one; a job that reports nothing may call it):
    past the run's soft time limit and outside the job's own transactions, raise here."""
    limit = _soft_limit.get()
    if limit is None or timezone.now() < limit.deadline:
        return
    if len(connection.atomic_blocks) > limit.atomic_depth:
        return
    raise SoftTimeLimitExceeded(
        f"soft time limit of {limit.seconds} s reached: stopped at a safe point"
    )
