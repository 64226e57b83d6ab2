"""Named locks (leases): a row per key, held by a run for exactly as long as the run lives.

Whether a lease is held is decided by one SQL rule (jobs.sql.LEASE_HELD, on top of the
run liveness of jobs.runs.lifecycle): while its run is queued or alive. A run killed with
kill -9 frees its leases as soon as PostgreSQL ends its session; a run hands its leases
to the run that continues its work (a chain's next hop, a retry), so they stay held
between hops, and that run takes them as its own. A run that ends drops the leases still
bound to it. A lease of no run (an operator's hold) lives until its expiry.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from jobs import sql


@dataclass(frozen=True)
class LeaseHandle:
    #: What is locked, e.g. "job:loyalty.expire_points" or "bibliotheca:collection:3".
    key: str
    #: Who holds it: "run:<id>" for a run, any name for an operator's hold.
    owner: str
    #: Only for a lease of no run.
    expires_at: datetime | None = None
    #: The owner this acquire took the lease from ("run:105"), or "" when it was free.
    taken_from: str = ""
    #: Why: "lease expired", "database session ended" or "run ended".
    taken_reason: str = ""
    #: The run that held it before (to record it lost when it still says running).
    taken_run: int | None = None
    #: This run held it already: handed to it (a chain's next hop, a retry), or re-entrant.
    kept: bool = False


def acquire_lease(
    *,
    key: str,
    owner: str,
    run_id: int | None = None,
    lease_seconds: float | None = None,
    now: datetime | None = None,
) -> LeaseHandle | None:
    """Take the lease for `owner`, or return None when someone else holds it.

    With `run_id` the lease is held while that run is queued or alive; without, for
    `lease_seconds`.
    """
    now = now or timezone.now()
    expires_at = None if run_id is not None else now + timedelta(seconds=lease_seconds or 0)
    params = {
        "key": key,
        "owner": owner,
        "run_id": run_id,
        "now": now,
        "expires_at": expires_at,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.ACQUIRE_LEASE, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return LeaseHandle(
        key=key,
        owner=owner,
        expires_at=expires_at,
        taken_from=row[1],
        taken_reason=row[2],
        taken_run=row[3],
        kept=row[4],
    )


def hand_over_leases(*, from_run: int, to_run: int) -> None:
    """Hand a run's leases to the run that continues its work (a chain's next hop, a
    retry), so they stay held while that run waits in the queue."""
    with connection.cursor() as cursor:
        cursor.execute(sql.HAND_OVER_LEASES, {"from_run": from_run, "to_run": to_run})


def bound_to_run(*, key: str, run_id: int) -> bool:
    """Whether the lease of `key` is still bound to the run (nobody took it meanwhile)."""
    from jobs.models import Lease

    return Lease.objects.filter(key=key, run_id=run_id).exists()


def release_lease(*, key: str, owner: str) -> bool:
    """Drop the lease; False when it was not ours (nothing is released then)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.RELEASE_LEASE, {"key": key, "owner": owner})
        return cursor.fetchone() is not None


def release_run_leases(run_id: int) -> None:
    """Drop the leases still bound to a run that ended; those it handed on (to a chain's
    next hop, a retry) are that run's now and stay."""
    with connection.cursor() as cursor:
        cursor.execute(sql.RELEASE_RUN_LEASES, {"run": run_id})


def lease_holder(key: str) -> tuple[str, datetime | None] | None:
    """(owner, expires_at) of the current lease row, if any."""
    from jobs.models import Lease

    row = Lease.objects.filter(key=key).values_list("owner", "expires_at").first()
    return (row[0], row[1]) if row else None


def lease_row(key: str):
    """The current Lease row of `key` (owner, run, expiry), or None."""
    from jobs.models import Lease

    return Lease.objects.filter(key=key).first()
