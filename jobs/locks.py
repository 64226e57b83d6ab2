"""Lease locks: a DB row with an owner token and an expiry.

Acquire is one INSERT ... ON CONFLICT DO UPDATE that only wins when the lease is
free, expired, or already ours; extend and release only work for the owner. A
crashed owner stops extending, its lease expires, and the next caller takes it:
nothing waits forever.
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


def acquire_lease(
    *, key: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> LeaseHandle | None:
    """Take the lease for `owner`, or return None when someone else holds it."""
    now = now or timezone.now()
    expires_at = now + timedelta(seconds=lease_seconds)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.ACQUIRE_LEASE, {"key": key, "owner": owner, "now": now, "expires_at": expires_at}
        )
        row = cursor.fetchone()
    return LeaseHandle(key=key, owner=owner, expires_at=expires_at) if row else None


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
