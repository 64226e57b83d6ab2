"""What waits in the configured django-q2 queue, per cluster: depth, oldest task, run ids.

The dashboard, /metrics, /health/ and the reaper read the queue through here, so they see
the broker the settings select (`Q_BROKER`): the PostgreSQL table `django_q_ormq` (one
grouped query) or django-q2's Redis lists `django_q:<cluster>:q` (one pipeline). Other
brokers answer depth only, through `queue_size()`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs.registry import CLUSTERS

#: django-q2's defaults when Q_CLUSTER leaves them out.
DJANGO_Q_DEFAULT_RETRY = 60


@dataclass(frozen=True)
class QueueState:
    """One cluster's queue: tasks waiting and when the oldest waiting one was queued."""

    depth: int
    #: None when nothing waits (or the broker cannot tell).
    oldest_enqueued_at: datetime | None = None


def broker_class() -> type:
    """The class django_q.brokers.get_broker() would build, without building one (the ORM
    broker's constructor may close the request's database connection)."""
    from django_q.brokers import Broker
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis
    from django_q.conf import Conf

    if Conf.BROKER_CLASS:
        return import_string(Conf.BROKER_CLASS)
    if Conf.IRON_MQ or isinstance(Conf.SQS, dict):
        return Broker  # pragma: no cover - not configured here
    if Conf.ORM:
        return ORM
    return Broker if Conf.MONGO else Redis


def queue_states(clusters: Iterable[str] = CLUSTERS) -> dict[str, QueueState]:
    """Depth and oldest waiting task of each cluster's queue, through the configured broker."""
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis

    clusters = list(clusters)
    kind = broker_class()
    if issubclass(kind, ORM):
        return _orm_states(clusters)
    if issubclass(kind, Redis):
        return _redis_states(get_broker(), clusters)
    return {name: QueueState(depth=get_broker(name).queue_size() or 0) for name in clusters}


def _orm_states(clusters: list[str]) -> dict[str, QueueState]:
    """One grouped query. `lock` is the enqueue time until a cluster takes the row, then the
    time it may be handed out again: rows with `lock` in the past are the ones waiting."""
    from django_q.models import OrmQ

    now = timezone.now()
    rows = (
        OrmQ.objects.filter(key__in=clusters)
        .order_by()
        .values_list("key")
        .annotate(n=Count("id"), oldest=Min("lock", filter=Q(lock__lte=now)))
    )
    states = dict.fromkeys(clusters, QueueState(depth=0))
    for key, count, oldest in rows:
        states[key] = QueueState(depth=count, oldest_enqueued_at=oldest)
    return states


def redis_list_key(cluster: str) -> str:
    """django-q2's Redis list of a cluster (django_q.brokers.redis_broker.Redis)."""
    return f"django_q:{cluster}:q"


def _redis_states(broker: Any, clusters: list[str]) -> dict[str, QueueState]:
    """LLEN and the head of each list (RPUSH/BLPOP: the head is the oldest task); the head's
    `started`, set by async_task when it queued the task, is the oldest task's age."""
    pipe = broker.connection.pipeline(transaction=False)
    for name in clusters:
        pipe.llen(redis_list_key(name))
        pipe.lindex(redis_list_key(name), 0)
    replies = pipe.execute()
    states = {}
    for i, name in enumerate(clusters):
        depth, head = replies[2 * i], replies[2 * i + 1]
        task = _decode(head) if head is not None else None
        states[name] = QueueState(depth=depth, oldest_enqueued_at=(task or {}).get("started"))
    return states


def _decode(payload: Any) -> dict[str, Any] | None:
    """A queued task's dict; None when it is not ours (signed with another key)."""
    from django_q.signing import BadSignature, SignedPackage

    if isinstance(payload, bytes):
        payload = payload.decode()
    try:
        task = SignedPackage.loads(payload)
    except BadSignature:
        return None
    return task if isinstance(task, dict) else None


def waiting_tasks(clusters: Iterable[str] = CLUSTERS) -> list[dict[str, Any]]:
    """Every task still held by the broker, decoded: waiting, or (ORM) taken by a cluster
    and not yet acknowledged, which the ORM broker hands out again after `retry`.

    Reads the whole queue: the reaper calls it only when it has candidates.
    """
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis

    clusters = list(clusters)
    kind = broker_class()
    if issubclass(kind, ORM):
        from django_q.models import OrmQ

        payloads = OrmQ.objects.filter(key__in=clusters).values_list("payload", flat=True)
    elif issubclass(kind, Redis):
        pipe = get_broker().connection.pipeline(transaction=False)
        for name in clusters:
            pipe.lrange(redis_list_key(name), 0, -1)
        payloads = [p for chunk in pipe.execute() for p in chunk]
    else:  # pragma: no cover - only the two brokers above are configured
        return []
    return [task for task in map(_decode, payloads) if task is not None]


def waiting_run_ids(clusters: Iterable[str] = CLUSTERS) -> set[int]:
    """Runs that a task held by the broker will still deliver (jobs.runner.execute_queued_run)."""
    from jobs.runner import EXECUTE_QUEUED_RUN

    return {
        int(task["kwargs"]["run_id"])
        for task in waiting_tasks(clusters)
        if task.get("func") == EXECUTE_QUEUED_RUN and "run_id" in (task.get("kwargs") or {})
    }


def cluster_retry_seconds(cluster: str) -> int:
    """Q_CLUSTER `retry` of a cluster (ALT_CLUSTERS override the base, as in django-q2)."""
    conf = settings.Q_CLUSTER
    base = conf.get("retry", DJANGO_Q_DEFAULT_RETRY)
    if cluster == conf.get("name", "default"):
        return int(base)
    return int(conf.get("ALT_CLUSTERS", {}).get(cluster, {}).get("retry", base))
