"""Health checks, one line each: `name: OK` or `name: FAIL reason (what to do)`."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from jobs.conf import jobs_settings
from jobs.models import JobRun, Notification
from jobs.registry import CLUSTERS
from jobs.services.queues import queue_states

logger = logging.getLogger("jobs.health")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: Warnings are shown but do not make the system unhealthy.
    warning: bool = False
    #: The exception behind a failure; it may name hosts, ports and users, so it goes to
    #: the logs, commands and staff only (`private`), never to an anonymous /health/ caller.
    error: str = ""

    def line(self, *, private: bool = True) -> str:
        verdict = "OK" if self.ok else ("WARN" if self.warning else "FAIL")
        error = f" [{self.error}]" if private and self.error else ""
        return f"{self.name}: {verdict} {self.detail}{error}".rstrip()

    def as_dict(self, *, private: bool = True) -> dict:
        data = {"ok": self.ok, "warning": self.warning, "detail": self.detail}
        if private and self.error:
            data["error"] = self.error
        return data


def _failed(name: str, what: str, hint: str, exc: Exception) -> Check:
    """A failed check: `what` and the exception logged; the page shows `what` and `hint`."""
    logger.error("health: %s: %s: %s", what, type(exc).__name__, exc)
    return Check(name, False, f"{what} ({hint})", error=f"{type(exc).__name__}: {exc}")


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Check("database", True, "")
    except Exception as exc:
        return _failed(
            "database", "database unreachable", "is PostgreSQL running? see DATABASE_URL", exc
        )


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
        return _failed("cluster", "cannot read cluster stats or queues", "is the broker up?", exc)
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
    # A run stopped at its soft time limit did not finish its work: it counts as a failure.
    failing = [JobRun.Status.FAILED, JobRun.Status.TIMED_OUT]
    finished = JobRun.objects.filter(
        finished_at__gte=since, status__in=[JobRun.Status.SUCCEEDED, *failing]
    )
    count = finished.filter(status__in=failing).count()
    latest = (
        finished.order_by("job", "-finished_at", "-id").distinct("job").values_list("job", "status")
    )
    unresolved = sorted(job for job, status in latest if status in failing)
    allowed = int(jobs_settings.HEALTH_MAX_FAILURES_24H)
    if unresolved or (allowed and count > allowed):
        return Check(
            "failures_24h",
            False,
            f"{count} failed run(s); latest run failed for: {', '.join(unresolved) or '-'}"
            " (see admin Job runs, status=failed or timed out; Retry there)",
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


def check_missed() -> Check:
    """Warn about cron slots of the last 24 h recorded `missed` (started past the grace)."""
    since = timezone.now() - timedelta(hours=24)
    rows = list(
        JobRun.objects.filter(status=JobRun.Status.MISSED, created_at__gte=since).values_list(
            "job", "pk"
        )[:20]
    )
    if rows:
        detail = ", ".join(f"{job} #{pk}" for job, pk in rows)
        return Check(
            "missed",
            False,
            f"cron slots missed (started more than {jobs_settings.MISFIRE_GRACE_SECONDS}s late,"
            f" not run): {detail} (was the cluster down? Run now if the work cannot wait)",
            warning=True,
        )
    return Check("missed", True, "")


def check_heartbeats() -> Check:
    """Warn about `running` runs whose heartbeat stopped: their worker may be dead.

    A killed run's lock is free at once (its database session ended) and the next run
    records it lost; until then only the stale heartbeat tells.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=int(jobs_settings.HEARTBEAT_WARN_SECONDS))
    rows = list(
        JobRun.objects.filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=stale_before)
        .order_by("heartbeat_at")
        .values_list("job", "pk", "host", "pid", "heartbeat_at")[:10]
    )
    if not rows:
        return Check("heartbeats", True, "")
    detail = ", ".join(
        f"{job} #{pk} on {host}:{pid} ({(now - beat).total_seconds():.0f} s ago)"
        for job, pk, host, pid, beat in rows
    )
    return Check(
        "heartbeats",
        False,
        f"running without a heartbeat: {detail} (worker dead? run the job again to take"
        " over its lock; see docs/operations.md 'Recovery after a crash')",
        warning=True,
    )


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
        check_heartbeats(),
        check_missed(),
        check_outbox(),
        *(check() for check in APP_CHECKS),
    ]


def is_healthy(checks: list[Check]) -> bool:
    return all(c.ok or c.warning for c in checks)
