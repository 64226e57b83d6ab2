"""Lease locks: a DB row with an owner token and an expiry.

Acquire is one INSERT ... ON CONFLICT DO UPDATE that only wins when the lease is
free, expired, or already ours; extend and release only work for the owner. A
lease held for the life of one run is bound to the run's database session
(`bind_session`): a killed process's session ends with it and the lease is free at
once. Otherwise (a chain's lease travels between tasks and sessions; a host that
vanished keeps its session open until TCP keepalive ends it) the crashed owner stops
extending, its lease expires, and the next caller takes it: nothing waits forever.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from jobs import sql


def new_owner_token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LeaseHandle:
    #: What is locked, e.g. "job:loyalty.expire_points" or "bibliotheca:collection:3".
    key: str
    #: The owner token; it travels with the work (chain hops) to prove ownership.
    owner: str
    expires_at: datetime
    #: The owner this acquire took the lease from ("run:105"), or "" when it was free.
    taken_from: str = ""
    #: Why: "lease expired" or "database session ended".
    taken_reason: str = ""


def acquire_lease(
    *,
    key: str,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
    bind_session: bool = False,
) -> LeaseHandle | None:
    """Take the lease for `owner`, or return None when someone else holds it.

    `bind_session`: the lease lives no longer than this database connection's session
    (the caller keeps the connection open while it holds the lease, as a run does).
    """
    now = now or timezone.now()
    expires_at = now + timedelta(seconds=lease_seconds)
    params = {
        "key": key,
        "owner": owner,
        "now": now,
        "expires_at": expires_at,
        "bind_session": bind_session,
    }
    with connection.cursor() as cursor:
        if bind_session or connection.in_atomic_block:
            cursor.execute(sql.PREPARE_SESSION_LEASE)
        cursor.execute(sql.ACQUIRE_LEASE, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return LeaseHandle(
        key=key, owner=owner, expires_at=expires_at, taken_from=row[1], taken_reason=row[2]
    )


def extend_lease(
    *, key: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> bool:
    """Push the expiry out; False when the lease is no longer ours (taken by another owner)."""
    expires_at = (now or timezone.now()) + timedelta(seconds=lease_seconds)
    with connection.cursor() as cursor:
        cursor.execute(sql.EXTEND_LEASE, {"key": key, "owner": owner, "expires_at": expires_at})
        return cursor.fetchone() is not None


def release_lease(*, key: str, owner: str) -> bool:
    """Drop the lease; False when it was not ours (nothing is released then)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.RELEASE_LEASE, {"key": key, "owner": owner})
        return cursor.fetchone() is not None


def lease_holder(key: str) -> tuple[str, datetime] | None:
    """(owner, expires_at) of the current lease row, if any."""
    from jobs.models import Lease

    row = Lease.objects.filter(key=key).values_list("owner", "expires_at").first()
    return (row[0], row[1]) if row else None


def lease_row(key: str):
    """The current Lease row of `key` (owner, expiry, session), or None."""
    from jobs.models import Lease

    return Lease.objects.filter(key=key).first()
