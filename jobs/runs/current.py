"""The run a job is part of (set by the runner around the job's call): read it, flag it for
attention, change its recorded arguments; outside a job these are no-ops."""

import logging
from contextvars import ContextVar
from typing import Any

from jobs.models import JobRun
from jobs.runs.locks import LeaseHandle

logger = logging.getLogger("jobs")
_current_run: ContextVar[JobRun | None] = ContextVar("current_run", default=None)
_current_lease: ContextVar[LeaseHandle | None] = ContextVar("current_lease", default=None)


def current_run() -> JobRun | None:
    """The JobRun being executed in this process, or None outside a job."""
    return _current_run.get()


set_current_run = _current_run.set
reset_current_run = _current_run.reset


def current_lease() -> LeaseHandle | None:
    """The single-flight lease the runner took for the current run (None: none): whether
    it was handed to this run (`kept`) or taken over from a dead holder (`taken_from`)."""
    return _current_lease.get()


set_current_lease = _current_lease.set
reset_current_lease = _current_lease.reset


def flag_for_attention(reason: str) -> None:
    """Mark the current run for attention (history and /health/ show it)."""
    run = current_run()
    if run is None:
        return
    logger.warning("%s #%s flagged for attention: %s", run.job, run.pk, reason)
    reason = "; ".join(filter(None, [run.attention_reason, reason]))[:500]
    run.needs_attention = True
    run.attention_reason = reason
    JobRun.objects.filter(pk=run.pk).update(needs_attention=True, attention_reason=reason)


def update_run_kwargs(**changes: Any) -> None:
    """Change the current run's arguments; a retry of this run is queued with the new ones
    (a chain's first hop records where it starts, so a retry reads the same range)."""
    run = current_run()
    if run is None:
        return
    run.kwargs = {**run.kwargs, **changes}
    JobRun.objects.filter(pk=run.pk).update(kwargs=run.kwargs)
