"""Queue again the runs whose task or worker was lost and that nothing would deliver again
(docs/operations.md "jobs.reap_lost_runs"); a requeued run keeps its id, so one delivery runs it."""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun
from jobs.queue.states import cluster_retry_seconds, waiting_run_ids
from jobs.registry import CLUSTERS, all_jobs, get_job
from jobs.runner import q_options_for
from jobs.runs import lifecycle
from jobs.runs.queue_task import EXECUTE_QUEUED_RUN

logger = logging.getLogger("jobs")


def lost_run_candidates(cutoffs: dict[str, datetime], *, limit: int) -> list[JobRun]:
    """Runs past the thresholds, oldest first; the broker's own holdings are not looked at."""
    stuck_queued = Q(pk__in=[])
    for spec in all_jobs():
        stuck_queued |= Q(job=spec.name, since__lt=cutoffs[spec.cluster])
    registered = [spec.name for spec in all_jobs()]
    runs = list(
        JobRun.objects.annotate(since=Coalesce("requeued_at", "scheduled_for", "created_at"))
        .filter(
            Q(status=JobRun.Status.QUEUED) & stuck_queued
            | Q(pk__in=lifecycle.lost_run_ids(limit=limit), job__in=registered)
        )
        .order_by("since", "id")[:limit]
    )
    # A delayed retry parked in a one-off Schedule is delivered by the scheduler.
    parked = set(
        Schedule.objects.filter(name__in=[f"run:{run.pk}" for run in runs])
        .exclude(repeats=0)
        .values_list("name", flat=True)
    )
    return [run for run in runs if f"run:{run.pk}" not in parked]


def reap_lost_runs(*, limit: int | None = None) -> dict[str, Any]:
    """Queue lost runs again (or fail the ones lost too often); returns what it did."""
    now = timezone.now()
    # Per cluster, when a queued run is lost: django-q2's `retry` ago (it exceeds `timeout`).
    cutoffs = {name: now - timedelta(seconds=cluster_retry_seconds(name)) for name in CLUSTERS}
    candidates = lost_run_candidates(cutoffs, limit=int(limit or jobs_settings.REAP_BATCH_SIZE))
    held = waiting_run_ids({get_job(run.job).cluster for run in candidates})
    result: dict[str, Any] = {"requeued": [], "failed": [], "left_to_broker": []}
    for run in candidates:
        if run.pk in held:
            result["left_to_broker"].append(run.pk)
            continue
        params = {"id": run.pk, "now": now, "queued_before": cutoffs[get_job(run.job).cluster]}
        if run.requeue_count >= int(jobs_settings.REAP_MAX_REQUEUES):
            reason = (
                f"worker lost: requeued {run.requeue_count} times and never finished; "
                f"last: {_reason(run)}"
            )
            if sql.fetch(sql.GIVE_UP_LOST_RUN, {**params, "reason": reason[:10000]}):
                result["failed"].append(run.pk)
        elif sql.fetch(sql.REQUEUE_LOST_RUN, {**params, "reason": _reason(run)}):
            _hand_to_broker(run, now)
            result["requeued"].append(run.pk)
    if result["requeued"] or result["failed"]:
        logger.warning("reaper: %s", result)
    return result


def _reason(run: JobRun) -> str:
    if run.status == JobRun.Status.RUNNING:
        beat = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if run.heartbeat_at else "never"
        text = f"worker lost: running on {run.host}:{run.pid}, last heartbeat {beat}"
    else:  # `since`: annotated by lost_run_candidates
        text = f"task lost: queued since {run.since:%Y-%m-%d %H:%M:%S} UTC, not held by the broker"
    return text[:500]


def _hand_to_broker(run: JobRun, now: datetime) -> None:
    """A new task for the run; if the broker refuses, undo the mark so the next pass retries."""
    try:
        async_task(
            EXECUTE_QUEUED_RUN, run_id=run.pk, q_options=q_options_for(get_job(run.job), run.pk)
        )
    except Exception:
        JobRun.objects.filter(pk=run.pk, status=JobRun.Status.QUEUED, requeued_at=now).update(
            requeued_at=run.requeued_at, requeue_count=F("requeue_count") - 1
        )
        raise
