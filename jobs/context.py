"""What a running job can know about itself: its JobRun, and the queue task that carries it."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobs.exceptions import SoftTimeLimitExceeded

if TYPE_CHECKING:
    from jobs.models import JobRun

logger = logging.getLogger("jobs")
_current_run: ContextVar["JobRun | None"] = ContextVar("current_run", default=None)
_queue_task: dict[str, Any] = {}


def remember_queue_task(sender: str, task: dict[str, Any], **kwargs: Any) -> None:
    """django-q2 pre_execute handler: a worker runs one task at a time, so keep its id."""
    _queue_task.clear()
    _queue_task.update(id=task.get("id"), name=task.get("name"))


def queue_task_id() -> str | None:
    return _queue_task.get("id")


def forget_queue_task() -> None:
    _queue_task.clear()


def current_run() -> "JobRun | None":
    """The JobRun being executed in this process, or None outside a job."""
    return _current_run.get()


def set_current_run(run: "JobRun | None") -> Any:
    return _current_run.set(run)


def reset_current_run(token: Any) -> None:
    _current_run.reset(token)


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
    from django.db import connection
    from django.utils import timezone

    deadline = timezone.now() + timedelta(seconds=seconds)
    return _soft_limit.set(_SoftLimit(deadline, seconds, len(connection.atomic_blocks)))


def reset_soft_limit(token: Any) -> None:
    _soft_limit.reset(token)


def checkpoint() -> None:
    """A safe point: past the run's soft time limit, raise SoftTimeLimitExceeded here.

    Called by report_progress; a job that reports nothing may call it between units of
    work. Inside a transaction the job opened it does nothing (stopping there would undo
    work the progress already counted); the next call outside one stops the job.
    """
    from django.db import connection
    from django.utils import timezone

    limit = _soft_limit.get()
    if limit is None or timezone.now() < limit.deadline:
        return
    if len(connection.atomic_blocks) > limit.atomic_depth:
        return
    raise SoftTimeLimitExceeded(
        f"soft time limit of {limit.seconds} s reached: stopped at a safe point"
    )


def report_progress(
    *, done: int, total: int | None = None, unit: str = "items", **extra: Any
) -> None:
    """Record how far the current run is (shown in the admin); a no-op outside a job."""
    from jobs.models import JobRun

    run = current_run()
    if run is None:
        return
    progress = {"done": done, "total": total, "unit": unit, **extra}
    run.progress = progress
    JobRun.objects.filter(pk=run.pk).update(progress=progress)
    for listener in tuple(_progress_listeners):
        listener(run, progress)
    checkpoint()


#: In-process observers of report_progress (e.g. `manage.py run_job`'s progress bar).
_progress_listeners: list[Callable[["JobRun", dict[str, Any]], None]] = []


@contextmanager
def watching_progress(
    listener: Callable[["JobRun", dict[str, Any]], None],
) -> Iterator[None]:
    """Call `listener(run, progress)` on every report_progress in this process meanwhile.

    A listener rather than a thread polling the row: a job may report inside its own
    transaction, which another connection would not see until it commits.
    """
    _progress_listeners.append(listener)
    try:
        yield
    finally:
        _progress_listeners.remove(listener)


def flag_for_attention(reason: str) -> None:
    """Mark the current run for attention (history and /health/ show it)."""
    from jobs.models import JobRun

    run = current_run()
    if run is None:
        return
    logger.warning("%s #%s flagged for attention: %s", run.job, run.pk, reason)
    reason = "; ".join(filter(None, [run.attention_reason, reason]))[:500]
    run.needs_attention = True
    run.attention_reason = reason
    JobRun.objects.filter(pk=run.pk).update(needs_attention=True, attention_reason=reason)


def update_run_kwargs(**changes: Any) -> None:
    """Change the current run's arguments; a retry of this run is queued with the new ones.

    A chain's first hop uses it to record the lock token it created, so the retry
    holds the same lock. A no-op outside a job.
    """
    from jobs.models import JobRun

    run = current_run()
    if run is None:
        return
    run.kwargs = {**run.kwargs, **changes}
    JobRun.objects.filter(pk=run.pk).update(kwargs=run.kwargs)
