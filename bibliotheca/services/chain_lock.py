"""The purchase chain's lease: one per collection, held across hops.

The first hop takes it with a new token that travels in the hops' kwargs; every hop
extends it and binds it to its own database session (jobs.locks `bind_session`), so
PostgreSQL's own rule says whether the chain is alive: a worker killed mid-hop frees
the lease as soon as its session ends, the next chain takes it over at once and records
the killed hop lost. A chain waiting between hops keeps it while the previous hop's
worker connection lives, and for the lease's length at most.
"""

import logging
from typing import Any

from django.utils import timezone

from bibliotheca.conf import bibliotheca_settings
from jobs import lock_holders, locks
from jobs.exceptions import JobSkipped
from jobs.models import JobRun

logger = logging.getLogger("bibliotheca")

CHAIN_JOB = "bibliotheca.import_purchase_records_by_collection"


def purchase_lock_key(collection_id: int) -> str:
    """Lease key of the purchase chain; the event import uses another key."""
    return f"bibliotheca:purchase_records:{collection_id}"


def take_new_lease(key: str, *, taken_by: int | None) -> tuple[str, str]:
    """A first hop's lease: (token, token of the chain it took over or "").

    Held by a live chain: JobSkipped naming the holder, with `lock_held` in the run's
    result (a manual run exits 3). Taken over from a dead or expired chain: that
    chain's running hop is recorded failed (worker lost)."""
    owner = locks.new_owner_token()
    lease = locks.acquire_lease(
        key=key,
        owner=owner,
        lease_seconds=bibliotheca_settings.LOCK_LEASE_SECONDS,
        bind_session=True,
    )
    if lease is None:
        holder = chain_holder(key)
        reason = lock_holders.holder_line(holder) if holder else f"lock {key} is held"
        raise JobSkipped(reason, details={"lock_held": holder or {"key": key}})
    if lease.taken_from:
        mark_lost_hops(lease, taken_by=taken_by)
    return owner, lease.taken_from


def keep_lease(key: str, owner: str) -> bool | None:
    """Extend the chain's lease and bind it to this hop's session: True; expired or
    freed, and retaken: False; held by another chain: None."""
    seconds = bibliotheca_settings.LOCK_LEASE_SECONDS
    ours = locks.extend_lease(key=key, owner=owner, lease_seconds=seconds)
    taken = locks.acquire_lease(key=key, owner=owner, lease_seconds=seconds, bind_session=True)
    if taken is None:
        return None
    return True if ours else False


def chain_holder(key: str) -> dict[str, Any] | None:
    """jobs.lock_holders.describe_holder, with the holding chain's latest hop (run, host,
    pid, heartbeat): a chain's token is not a run's, so the core cannot name it."""
    info = lock_holders.describe_holder(key)
    if info is None or "run_id" in info:
        return info
    hop = (
        JobRun.objects.filter(job=CHAIN_JOB, kwargs__lock_owner=info["owner"])
        .order_by("-id")
        .first()
    )
    if hop is not None:
        info.update(run_id=hop.pk, job=hop.job, status=hop.status, host=hop.host, pid=hop.pid)
        if hop.heartbeat_at is not None:
            age = (timezone.now() - hop.heartbeat_at).total_seconds()
            info["heartbeat_age_seconds"] = round(age, 1)
        info["owner"] = f"the chain of run #{hop.pk}"
    return info


def mark_lost_hops(lease: locks.LeaseHandle, *, taken_by: int | None) -> int:
    """Record the running hops of the chain we took the lease from `failed`: their
    session ended (killed) or their lease expired, and nothing else would say so."""
    error = (
        f"worker lost: its chain's lock {lease.key} was taken over by run #{taken_by} "
        f"because its {lease.taken_reason} (process killed or crashed)"
    )
    lost = JobRun.objects.filter(
        job=CHAIN_JOB, status=JobRun.Status.RUNNING, kwargs__lock_owner=lease.taken_from
    ).exclude(pk=taken_by)
    count = lost.update(status=JobRun.Status.FAILED, finished_at=timezone.now(), error=error)
    if count:
        logger.warning("%s: %s running hop(s) marked lost: %s", CHAIN_JOB, count, error)
    return count
