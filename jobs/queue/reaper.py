"""Queue again the runs whose task or worker was lost (the job `jobs.reap_lost_runs`).

Why: the broker keeps a task in `django_q_ormq` until it is acknowledged and hands one
taken and not acknowledged out again after `retry`, so the reaper leaves alone every run
whose task the broker still holds. What the broker never delivers again:
- a run committed `queued` whose task was never inserted: jobs.runner hands the task over
  after the commit, and the process died in between (or the row was deleted by hand);
- a `running` run whose task was acknowledged: the worker failed to record the outcome
  (the database failed at that moment) and the failed task is acknowledged (ack_failures);
- a scheduled run whose worker died: its task comes back, but is refused as a second
  delivery of the same slot, so nothing else runs that run again.

A run is lost when
- `queued`, and its cluster's Q_CLUSTER `retry` has passed since it was due (or since the
  reaper last queued it), no delayed-retry Schedule will still deliver it, and no task for
  it is held by the broker; `retry` is django-q2's own "a task taken and not acknowledged
  by then is lost" and exceeds the cluster's `timeout`;
- `running`, not alive by jobs.runs.lifecycle's rule (no session holds it: its worker died),
  and no task for it held by the broker. A late delivery may claim it too (jobs.runs.lifecycle.claim
  takes over a run whose worker is gone), so whichever comes first runs it and the other
  finds it claimed.

The reaper sets it `queued` again (recording when, why and how often) with one conditional
UPDATE, then hands a new task to the broker; the run keeps its id, and the claim by
conditional UPDATE in jobs.runner lets exactly one delivery run it. After
REAP_MAX_REQUEUES the run is recorded `failed` instead.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun
from jobs.queue.states import cluster_retry_seconds, waiting_run_ids
from jobs.registry import CLUSTERS, all_jobs, get_job
from jobs.runs import lifecycle

logger = logging.getLogger("jobs")


@dataclass(frozen=True)
class Cutoffs:
    """Before these instants a run counts as lost (per cluster for queued runs)."""

    queued_before: dict[str, datetime]

    @classmethod
    def at(cls, now: datetime) -> "Cutoffs":
        return cls(
            queued_before={
                name: now - timedelta(seconds=cluster_retry_seconds(name)) for name in CLUSTERS
            },
        )


def lost_run_candidates(now: datetime, *, limit: int) -> list[JobRun]:
    """Runs past the thresholds, oldest first; the broker's own holdings are not looked at."""
    from django_q.models import Schedule

    cutoffs = Cutoffs.at(now)
    jobs_by_cluster: dict[str, list[str]] = {}
    for spec in all_jobs():
        jobs_by_cluster.setdefault(spec.cluster, []).append(spec.name)
    stuck_queued = Q(pk__in=[])
    for cluster, names in jobs_by_cluster.items():
        stuck_queued |= Q(job__in=names, since__lt=cutoffs.queued_before[cluster])
    registered = [name for names in jobs_by_cluster.values() for name in names]
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
    candidates = lost_run_candidates(now, limit=int(limit or jobs_settings.REAP_BATCH_SIZE))
    result: dict[str, Any] = {"requeued": [], "failed": [], "left_to_broker": []}
    if not candidates:
        return result
    held = waiting_run_ids({get_job(run.job).cluster for run in candidates})
    cutoffs = Cutoffs.at(now)
    for run in candidates:
        if run.pk in held:
            result["left_to_broker"].append(run.pk)
            continue
        params = {
            "id": run.pk,
            "now": now,
            "queued_before": cutoffs.queued_before[get_job(run.job).cluster],
            "reason": _reason(run),
        }
        if run.requeue_count >= int(jobs_settings.REAP_MAX_REQUEUES):
            params["reason"] = (
                f"worker lost: requeued {run.requeue_count} times and never finished; "
                f"last: {params['reason']}"
            )[:10000]
            if _update(sql.GIVE_UP_LOST_RUN, params):
                result["failed"].append(run.pk)
            continue
        if _update(sql.REQUEUE_LOST_RUN, params):
            _hand_to_broker(run, now)
            result["requeued"].append(run.pk)
    if result["requeued"] or result["failed"]:
        logger.warning("reaper: %s", result)
    return result


def _reason(run: JobRun) -> str:
    if run.status == JobRun.Status.RUNNING:
        beat = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if run.heartbeat_at else "never"
        text = f"worker lost: running on {run.host}:{run.pid}, last heartbeat {beat}"
    else:
        since = run.since  # annotated by lost_run_candidates
        text = f"task lost: queued since {since:%Y-%m-%d %H:%M:%S} UTC, not held by the broker"
    return text[:500]


def _update(statement: str, params: dict[str, Any]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone() is not None


def _hand_to_broker(run: JobRun, now: datetime) -> None:
    """A new task for the run; if the broker refuses, undo the mark so the next pass retries."""
    from django_q.tasks import async_task

    from jobs.runner import q_options_for
    from jobs.runs.queue_task import EXECUTE_QUEUED_RUN

    spec = get_job(run.job)
    try:
        async_task(EXECUTE_QUEUED_RUN, run_id=run.pk, q_options=q_options_for(spec, run.pk))
    except Exception:
        JobRun.objects.filter(pk=run.pk, status=JobRun.Status.QUEUED, requeued_at=now).update(
            requeued_at=run.requeued_at, requeue_count=F("requeue_count") - 1
        )
        raise
