"""Health checks, one line each: `name: OK` or `name: FAIL reason (what to do)`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from jobs.conf import jobs_settings
from jobs.models import JobRun, Notification
from jobs.registry import CLUSTERS
from jobs.services.queues import queue_states


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: Warnings are shown but do not make the system unhealthy.
    warning: bool = False

    def line(self) -> str:
        verdict = "OK" if self.ok else ("WARN" if self.warning else "FAIL")
        return f"{self.name}: {verdict} {self.detail}".rstrip()

    def as_dict(self) -> dict:
        return {"ok": self.ok, "warning": self.warning, "detail": self.detail}


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Check("database", True, "")
    except Exception as exc:
        return Check("database", False, f"{exc} (is PostgreSQL running? see DATABASE_URL)")


def check_cluster() -> Check:
    """A cluster heartbeat (django-q2 Stat, 3 s TTL in the shared cache) and no stalled queue.

    Stalled: the oldest task waiting in a cluster's queue (PostgreSQL or Redis, see
    jobs.services.queues) was queued more than QUEUE_STALL_SECONDS ago.
    """
    from django_q.brokers import get_broker
    from django_q.status import Stat

    try:
        stats = Stat.get_all(broker=get_broker())
        queues = queue_states(CLUSTERS)
    except Exception as exc:
        return Check("cluster", False, f"cannot read cluster stats or queues: {exc}")
    stall_before = timezone.now() - timedelta(seconds=int(jobs_settings.QUEUE_STALL_SECONDS))
    stalled = [
        name
        for name, state in queues.items()
        if state.oldest_enqueued_at is not None and state.oldest_enqueued_at < stall_before
    ]
    if not stats:
        return Check("cluster", False, "no qcluster heartbeat (start: make run-cluster)")
    if stalled:
        return Check(
            "cluster",
            False,
            f"queue(s) {', '.join(stalled)} not consumed for "
            f"{jobs_settings.QUEUE_STALL_SECONDS}s (start Q_CLUSTER_NAME=<name> manage.py qcluster)",
        )
    return Check("cluster", True, f"{len(stats)} cluster process(es) alive")


def check_schedules() -> Check:
    from django_q.models import Schedule

    overdue_before = timezone.now() - timedelta(seconds=int(jobs_settings.SCHEDULE_OVERDUE_SECONDS))
    overdue = list(
        Schedule.objects.exclude(repeats=0)
        .filter(next_run__lt=overdue_before)
        .values_list("name", flat=True)[:10]
    )
    if overdue:
        return Check(
            "schedules",
            False,
            f"overdue: {', '.join(str(n) for n in overdue)} (is the scheduler's cluster running?)",
        )
    return Check("schedules", True, "")


def check_recent_failures() -> Check:
    """Failures of the last 24 h; unhealthy while a job's latest finished run is a failure.

    A failure followed by a successful run (a retry that worked) is reported but
    resolved; HEALTH_MAX_FAILURES_24H caps the total as well.
    """
    since = timezone.now() - timedelta(hours=24)
    finished = JobRun.objects.filter(
        finished_at__gte=since,
        status__in=[JobRun.Status.SUCCEEDED, JobRun.Status.FAILED],
    )
    count = finished.filter(status=JobRun.Status.FAILED).count()
    latest = (
        finished.order_by("job", "-finished_at", "-id").distinct("job").values_list("job", "status")
    )
    unresolved = sorted(job for job, status in latest if status == JobRun.Status.FAILED)
    allowed = int(jobs_settings.HEALTH_MAX_FAILURES_24H)
    if unresolved or (allowed and count > allowed):
        return Check(
            "failures_24h",
            False,
            f"{count} failed run(s); latest run failed for: {', '.join(unresolved) or '-'}"
            " (see admin Job runs, status=failed; Retry there)",
        )
    return Check("failures_24h", True, f"{count} failed run(s), all followed by a success")


def check_attention() -> Check:
    since = timezone.now() - timedelta(hours=24)
    flagged = JobRun.objects.filter(needs_attention=True, created_at__gte=since)
    rows = list(flagged.values_list("job", "pk", "attention_reason")[:20])
    if rows:
        detail = ", ".join(
            f"{job} #{pk}" + (f" ({reason})" if reason else "") for job, pk, reason in rows
        )
        return Check("attention", False, f"runs flagged: {detail}", warning=True)
    return Check("attention", True, "")


def check_outbox() -> Check:
    dead = Notification.objects.filter(status=Notification.Status.DEAD).count()
    if dead:
        return Check(
            "outbox", False, f"{dead} dead notification(s) (requeue in admin)", warning=True
        )
    return Check("outbox", True, "")


#: Checks of the apps (registered in their AppConfig.ready), run after the core's.
APP_CHECKS: list[Callable[[], Check]] = []


def register_check(check: Callable[[], Check]) -> None:
    if check not in APP_CHECKS:
        APP_CHECKS.append(check)


def run_checks() -> list[Check]:
    database = check_database()
    if not database.ok:
        return [database]
    return [
        database,
        check_cluster(),
        check_schedules(),
        check_recent_failures(),
        check_attention(),
        check_outbox(),
        *(check() for check in APP_CHECKS),
    ]


def is_healthy(checks: list[Check]) -> bool:
    return all(c.ok or c.warning for c in checks)
