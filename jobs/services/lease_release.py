"""Releasing a lease by hand, only when its holder is gone.

A lease is held by a run (`run:<id>`, the single-flight lock of jobs.runner) or by a
chain's token (`lock_owner` in the kwargs of each of its hops). The holder is alive
while one of its runs is queued (a chain between hops, a retry waiting) or running with
a fresh heartbeat; then releasing would let a second copy of the work start. A lease
whose holder is not found at all is treated as alive until it expires: we cannot tell.

A session-bound lease (jobs.locks records the holder's `pg_backend_pid()` and its
`backend_start`) is judged by pg_stat_activity first; chain leases, which travel
between tasks, by their runs' state and heartbeat freshness.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings
from jobs.lock_holders import run_id_of
from jobs.models import JobRun, Lease


@dataclass(frozen=True)
class Verdict:
    #: True when a live holder keeps the lease (release refused).
    alive: bool
    #: What was found, for the operator: "run #12 running, heartbeat 4s ago".
    detail: str


def holder_runs(lease: Lease) -> Q:
    """The runs that hold `lease`: the owner's run id, or the chain's token in kwargs."""
    run_id = run_id_of(lease.owner)
    return Q(pk=run_id) if run_id is not None else Q(kwargs__lock_owner=lease.owner)


def holder_session_alive(lease: Lease) -> bool | None:
    """Whether the holder's database session still exists; None for a lease not bound to one."""
    if lease.session_pid is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
            " AND (%s::timestamptz IS NULL OR backend_start = %s)",
            [lease.session_pid, lease.session_started, lease.session_started],
        )
        return cursor.fetchone() is not None


def judge(lease: Lease, *, now: datetime | None = None) -> Verdict:
    now = now or timezone.now()
    if lease.expires_at < now:
        return Verdict(False, f"expired {int((now - lease.expires_at).total_seconds())}s ago")
    session = holder_session_alive(lease)
    if session:
        return Verdict(True, f"holder's database session (pid {lease.session_pid}) is alive")
    fresh_after = now - timedelta(seconds=int(jobs_settings.STALE_RUN_SECONDS))
    runs = list(
        JobRun.objects.filter(holder_runs(lease))
        .order_by("-id")
        .values_list("pk", "status", "heartbeat_at")[:20]
    )
    for pk, status, heartbeat_at in runs:
        if status == JobRun.Status.QUEUED:
            return Verdict(True, f"run #{pk} is queued")
        if status == JobRun.Status.RUNNING and heartbeat_at and heartbeat_at >= fresh_after:
            age = int((now - heartbeat_at).total_seconds())
            return Verdict(True, f"run #{pk} is running, heartbeat {age}s ago")
    if runs or session is False:
        pk, status, heartbeat_at = runs[0] if runs else (None, "gone", None)
        return Verdict(
            False, f"run #{pk} is {status}" + (" (heartbeat stale)" if heartbeat_at else "")
        )
    return Verdict(True, f"holder {lease.owner} unknown; free at {lease.expires_at:%H:%M:%S} UTC")


def release_dead_leases(leases: list[Lease]) -> tuple[list[str], list[str]]:
    """Release the leases whose holder is gone: (released keys, refused "key: why" lines)."""
    released, refused = [], []
    for lease in leases:
        verdict = judge(lease)
        if verdict.alive:
            refused.append(f"{lease.key}: {verdict.detail}")
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                sql.RELEASE_JUDGED_LEASE,
                {"key": lease.key, "owner": lease.owner, "expires_at": lease.expires_at},
            )
            if cursor.fetchone():
                released.append(lease.key)
            else:
                refused.append(f"{lease.key}: changed meanwhile (its holder renewed it)")
    return released, refused
