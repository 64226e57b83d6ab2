"""What waits in django-q2's queue (the `django_q_ormq` table our broker takes tasks from),
per cluster: for the dashboard, /metrics, /health/ and the reaper."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django_q.models import OrmQ

from jobs.registry import CLUSTERS
from jobs.runs.queue_task import EXECUTE_QUEUED_RUN


@dataclass(frozen=True)
class QueueState:
    """One cluster's queue: tasks waiting and when the oldest waiting one (if any) was queued."""

    depth: int
    oldest_enqueued_at: datetime | None = None


def queue_states(clusters: Iterable[str] = CLUSTERS) -> dict[str, QueueState]:
    """Depth and oldest waiting task of each cluster's queue, in one grouped query. `lock` is
    the enqueue time until a cluster takes the row: rows with `lock` in the past are waiting."""
    clusters = list(clusters)
    rows = (
        OrmQ.objects.filter(key__in=clusters)
        .order_by()
        .values_list("key")
        .annotate(n=Count("id"), oldest=Min("lock", filter=Q(lock__lte=timezone.now())))
    )
    states = dict.fromkeys(clusters, QueueState(depth=0))
    for key, count, oldest in rows:
        states[key] = QueueState(depth=count, oldest_enqueued_at=oldest)
    return states


def _decode(payload: str) -> dict[str, Any] | None:
    """A queued task's dict (django-q2's own reading, `OrmQ.task`); None when it is not
    ours (signed with another key: django-q2 reads it as {"id": "*BadSignature"})."""
    task = OrmQ(payload=payload).task
    if not isinstance(task, dict) or str(task.get("id", "")).startswith("*"):
        return None
    return task


def waiting_run_ids(clusters: Iterable[str] = CLUSTERS) -> set[int]:
    """Runs that a task held by the broker will still deliver: waiting, or taken and not yet
    acknowledged (handed out again after `retry`). Reads the whole queue of `clusters`."""
    payloads = OrmQ.objects.filter(key__in=list(clusters)).values_list("payload", flat=True)
    return {
        int(task["kwargs"]["run_id"])
        for task in filter(None, map(_decode, payloads))
        if task.get("func") == EXECUTE_QUEUED_RUN and "run_id" in (task.get("kwargs") or {})
    }


def cluster_retry_seconds(cluster: str) -> int:
    """Q_CLUSTER `retry` of a cluster (ALT_CLUSTERS override the base, as in django-q2)."""
    conf = settings.Q_CLUSTER
    base = conf.get("retry", 60)  # django-q2's default
    if cluster == conf.get("name", "default"):
        return int(base)
    return int(conf.get("ALT_CLUSTERS", {}).get(cluster, {}).get("retry", base))
