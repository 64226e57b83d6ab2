"""Named locks (leases): a row per key, held while its run is queued or alive (jobs.sql.LEASE_HELD),
handed to the run that continues the work; a lease of no run (an operator's hold) until its expiry."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from jobs import sql
from jobs.models import Lease


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
    """Take the lease for `owner`, or None when someone else holds it: with `run_id` while that
    run is queued or alive, else for `lease_seconds`."""
    now = now or timezone.now()
    expires_at = None if run_id is not None else now + timedelta(seconds=lease_seconds or 0)
    params = {"key": key, "owner": owner, "run_id": run_id, "now": now, "expires_at": expires_at}
    rows = sql.fetch(sql.ACQUIRE_LEASE, params)
    if not rows:
        return None
    _, taken_from, taken_reason, taken_run, kept = rows[0]
    return LeaseHandle(key, owner, expires_at, taken_from, taken_reason, taken_run, kept)


def hand_over_leases(*, from_run: int, to_run: int) -> None:
    """Hand a run's leases to the run that continues its work (a chain's next hop, a
    retry), so they stay held while that run waits in the queue."""
    Lease.objects.filter(run_id=from_run).update(run_id=to_run)


def bound_to_run(*, key: str, run_id: int) -> bool:
    """Whether the lease of `key` is still bound to the run (nobody took it meanwhile)."""
    return Lease.objects.filter(key=key, run_id=run_id).exists()


def release_lease(*, key: str, owner: str) -> bool:
    """Drop the lease; False when it was not ours (nothing is released then)."""
    return Lease.objects.filter(key=key, owner=owner).delete()[0] > 0


def release_run_leases(run_id: int) -> None:
    """Drop the leases still bound to a run that ended; those it handed on are that run's now."""
    Lease.objects.filter(run_id=run_id).delete()


def lease_row(key: str) -> Lease | None:
    """The current Lease row of `key` (owner, run, expiry), or None."""
    return Lease.objects.filter(key=key).first()
