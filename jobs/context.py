"""What a running job can know about itself: its JobRun, and the queue task that carries it."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

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
