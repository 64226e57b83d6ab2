"""Health checks, one line each: `name: OK` or `name: FAIL reason (what to do)`. Who sees
what (`health_report`) and why only `database` makes /health/ answer 503 (`takes_traffic`):
docs/operations.md "Health"."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun, Notification
from jobs.queue.states import queue_states
from jobs.registry import CLUSTERS
from jobs.runs import lifecycle

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
    #: Failing means this process should not take traffic: /health/ answers 503.
    critical: bool = False

    @property
    def state(self) -> str:
        """One of ok, warn, fail: all an anonymous caller learns about the check."""
        return "ok" if self.ok else ("warn" if self.warning else "fail")

    def line(self, *, private: bool = True) -> str:
        if not private:
            return f"{self.name}: {self.state.upper()}"
        error = f" [{self.error}]" if self.error else ""
        return f"{self.name}: {self.state.upper()} {self.detail}{error}".rstrip()

    def as_dict(self, *, private: bool = True) -> dict:
        data = {"state": self.state, "ok": self.ok, "warning": self.warning}
        if private:
            data["detail"] = self.detail
            if self.error:
                data["error"] = self.error
        return data


def _failed(name: str, what: str, hint: str, exc: Exception, *, critical: bool = False) -> Check:
    """A failed check: `what` and the exception logged; staff see `what`, `hint` and it."""
    logger.error("health: %s: %s: %s", what, type(exc).__name__, exc)
    return Check(
        name, False, f"{what} ({hint})", error=f"{type(exc).__name__}: {exc}", critical=critical
    )


def _verdict(name: str, found: bool, problem: str, *, warning: bool = False, ok: str = "") -> Check:
    """FAIL (WARN when `warning`: told, not unhealthy) with `problem` when something was
    `found`, else OK with `ok`."""
    return Check(name, False, problem, warning=warning) if found else Check(name, True, ok)


def _runs_24h(**filters: Any) -> str:
    """Up to 20 runs of the last 24 h matching `filters`, as `job #id (attention reason)`."""
    since = timezone.now() - timedelta(hours=24)
    runs = JobRun.objects.filter(created_at__gte=since, **filters)
    return ", ".join(
        f"{job} #{pk}" + (f" ({reason})" if reason else "")
        for job, pk, reason in runs.values_list("job", "pk", "attention_reason")[:20]
    )


def check_database() -> Check:
    try:
        sql.fetch("SELECT 1", {})
        return Check("database", True, "")
    except Exception as exc:
        return _failed(
            "database",
            "database unreachable",
            "is PostgreSQL running? see DATABASE_URL",
            exc,
            critical=True,
        )


def check_cluster() -> Check:
    """Every cluster's queue has a qcluster consuming it (found by its database sessions,
    named after the queue) and none has a task waiting longer than QUEUE_STALL_SECONDS."""
    try:
        consumers = queue_consumers()
        queues = queue_states(CLUSTERS)
    except Exception as exc:
        return _failed("cluster", "cannot read the queues", "is PostgreSQL up?", exc)
    missing = [name for name in CLUSTERS if not consumers.get(name)]
    if len(missing) == len(CLUSTERS):
        return Check("cluster", False, "no qcluster running (start: make run-cluster)")
    if missing:
        return Check(
            "cluster",
            False,
            f"queue(s) {', '.join(missing)} not consumed: no qcluster for them"
            " (start Q_CLUSTER_NAME=<name> manage.py qcluster)",
        )
    stall_before = timezone.now() - timedelta(seconds=int(jobs_settings.QUEUE_STALL_SECONDS))
    stalled = [
        name
        for name, state in queues.items()
        if state.oldest_enqueued_at is not None and state.oldest_enqueued_at < stall_before
    ]
    return _verdict(
        "cluster",
        bool(stalled),
        f"queue(s) {', '.join(stalled)} not consumed for "
        f"{jobs_settings.QUEUE_STALL_SECONDS}s though a qcluster is connected (stuck?)",
        ok=f"every queue consumed ({', '.join(CLUSTERS)})",
    )


def queue_consumers() -> dict[str, int]:
    """Connected sessions per queue name, of the qclusters consuming them."""
    return dict(sql.fetch(sql.QUEUE_CONSUMERS, {"prefix": settings.QCLUSTER_SESSION_PREFIX}))


def check_schedules() -> Check:
    overdue_before = timezone.now() - timedelta(seconds=int(jobs_settings.SCHEDULE_OVERDUE_SECONDS))
    overdue = list(
        Schedule.objects.exclude(repeats=0)
        .filter(next_run__lt=overdue_before)
        .values_list("name", flat=True)[:10]
    )
    return _verdict(
        "schedules",
        bool(overdue),
        f"overdue: {', '.join(str(n) for n in overdue)} (is the scheduler's cluster running?)",
    )


def check_recent_failures() -> Check:
    """Unhealthy while a job's latest run of the last 24 h failed (or the count passes
    HEALTH_MAX_FAILURES_24H); a refused queue task is `attention`'s, not a job's failure."""
    from jobs.queue.guard import REFUSED_JOB

    since = timezone.now() - timedelta(hours=24)
    # A run stopped at its soft time limit did not finish its work: it counts as a failure.
    failing = [JobRun.Status.FAILED, JobRun.Status.TIMED_OUT]
    finished = JobRun.objects.filter(
        finished_at__gte=since, status__in=[JobRun.Status.SUCCEEDED, *failing]
    ).exclude(job=REFUSED_JOB)
    count = finished.filter(status__in=failing).count()
    latest = (
        finished.order_by("job", "-finished_at", "-id").distinct("job").values_list("job", "status")
    )
    unresolved = sorted(job for job, status in latest if status in failing)
    allowed = int(jobs_settings.HEALTH_MAX_FAILURES_24H)
    return _verdict(
        "failures_24h",
        bool(unresolved or (allowed and count > allowed)),
        f"{count} failed run(s); latest run failed for: {', '.join(unresolved) or '-'}"
        " (see admin Job runs, status=failed or timed out; Retry there)",
        ok=f"{count} failed run(s), all followed by a success",
    )


def check_attention() -> Check:
    flagged = _runs_24h(needs_attention=True)
    return _verdict("attention", bool(flagged), f"runs flagged: {flagged}", warning=True)


def check_missed() -> Check:
    """Warn about cron slots of the last 24 h recorded `missed` (started past the grace)."""
    missed = _runs_24h(status=JobRun.Status.MISSED)
    return _verdict(
        "missed",
        bool(missed),
        f"cron slots missed (started more than {jobs_settings.MISFIRE_GRACE_SECONDS}s late,"
        f" not run): {missed} (was the cluster down? Run now if the work cannot wait)",
        warning=True,
    )


def check_lost_runs() -> Check:
    """Warn about `running` runs whose worker is gone (jobs.runs.lifecycle's liveness rule)."""
    now = timezone.now()
    lost = lifecycle.lost_runs(limit=10)
    detail = ", ".join(
        f"{run.job} #{run.pk} on {run.host}:{run.pid}"
        + (
            f" (last heartbeat {(now - run.heartbeat_at).total_seconds():.0f} s ago)"
            if run.heartbeat_at
            else ""
        )
        for run in lost
    )
    return _verdict(
        "lost_runs",
        bool(lost),
        f"running, but the worker is gone: {detail} (its redelivery, the next run or the"
        " reaper records it; see docs/operations.md 'Recovery after a crash')",
        warning=True,
    )


def check_outbox() -> Check:
    """Dead rows staff can requeue: one past its `deliver_before` is refused by Requeue and
    never pruned, so counting it would warn for ever (admin: dead reason, deliver before)."""
    dead = (
        Notification.objects.filter(status=Notification.Status.DEAD)
        .exclude(deliver_before__lte=timezone.now())
        .count()
    )
    return _verdict(
        "outbox", dead > 0, f"{dead} dead notification(s) (requeue in admin)", warning=True
    )


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
        check_lost_runs(),
        check_missed(),
        check_outbox(),
        *(check() for check in APP_CHECKS),
    ]


def is_healthy(checks: list[Check]) -> bool:
    """No FAIL at all (`manage.py jobs_health` exits 1 otherwise)."""
    return all(c.ok or c.warning for c in checks)


def takes_traffic(checks: list[Check]) -> bool:
    """No critical check fails: /health/ answers 200 (see the module doc)."""
    return not any(c.critical and not c.ok for c in checks)


def overall_status(checks: list[Check]) -> str:
    """ "unhealthy" (no traffic: 503), "degraded" (a FAIL that alerts carry) or "healthy"."""
    if not takes_traffic(checks):
        return "unhealthy"
    return "healthy" if is_healthy(checks) else "degraded"


def health_report(checks: list[Check], *, private: bool) -> dict:
    """The /health/ body: every detail when `private` (staff), names and states otherwise."""
    return {
        "status": overall_status(checks),
        "checks": {c.name: c.as_dict(private=private) for c in checks},
        "lines": [c.line(private=private) for c in checks],
    }
