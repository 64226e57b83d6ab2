"""JobRun bookkeeping: the one place a run row is made, claimed and finished.

Every path that records a run (queued, scheduled, in-process, a refused queue task)
builds it with `new_run`, so the fields a run starts with are set once.
"""

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from jobs import context, sql
from jobs.conf import jobs_settings
from jobs.heartbeat import claimed_by_us, safely
from jobs.models import JobRun
from jobs.registry import JobSpec

logger = logging.getLogger("jobs")


def new_run(
    name: str,
    *,
    trigger: str,
    triggered_by: str = "",
    kwargs: dict[str, Any] | None = None,
    parent: JobRun | None = None,
    attempt: int = 1,
    scheduled_for: datetime | str | None = None,
    **fields: Any,
) -> JobRun:
    """An unsaved `queued` JobRun of job `name` (other `fields`, e.g. status, override)."""
    return JobRun(
        job=name,
        trigger=trigger,
        triggered_by=triggered_by[:150],
        kwargs=dict(kwargs or {}),
        parent=parent,
        attempt=attempt,
        status=fields.pop("status", JobRun.Status.QUEUED),
        scheduled_for=scheduled_for,
        **fields,
    )


def claim(run_id: int) -> JobRun | None:
    """Make a queued run (or one whose worker is gone) this worker's; None: not ours."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=jobs_settings.STALE_RUN_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.CLAIM_RUN,
            {
                "id": run_id,
                "now": now,
                "stale_before": stale_before,
                "host": socket.gethostname()[:255],
                "pid": os.getpid(),
                "task_id": context.queue_task_id(),
            },
        )
        if cursor.fetchone() is None:
            return None
    return JobRun.objects.get(pk=run_id)


def finish(
    run: JobRun,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str = "",
    tb: str = "",
    elapsed: float | None = None,
) -> None:
    """Record the run's outcome, only while it is still this worker's claim."""
    now = timezone.now()
    run.status = status
    run.result = result
    run.error = error
    run.traceback = tb
    run.finished_at = now
    run.duration_seconds = (
        elapsed if elapsed is not None else (now - (run.started_at or now)).total_seconds()
    )
    fields = ["status", "result", "error", "traceback", "finished_at", "duration_seconds"]
    # needs_attention/progress may have been set through jobs.context by the job itself.
    updated = safely(lambda: claimed_by_us(run).update(**{f: getattr(run, f) for f in fields}))
    if updated == 0:
        logger.warning(
            "%s #%s was taken over by another worker while this one (%s pid %s) ran it;"
            " this worker's outcome (%s) is not recorded",
            run.job,
            run.pk,
            run.host,
            run.pid,
            status,
        )
        return
    from jobs.services.alerts import note_finished_run  # alerts need the whole core loaded

    note_finished_run(run)


def fail_lost_runs(spec: JobSpec, *, current_id: int) -> None:
    """We hold the lock, so other `running` runs of the job with a stale heartbeat are dead."""
    cutoff = timezone.now() - timedelta(seconds=spec.lease_seconds)
    lost = JobRun.objects.filter(
        job=spec.name, status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff
    ).exclude(pk=current_id)
    count = lost.update(
        status=JobRun.Status.FAILED,
        finished_at=timezone.now(),
        error="worker lost: no heartbeat for longer than the lease; the next run took over",
    )
    if count:
        logger.warning("%s: marked %s lost run(s) failed", spec.name, count)
