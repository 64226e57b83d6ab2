"""The purchase chain's lease: one per collection, held across hops.

The first hop takes it with a new token that travels in the hops' kwargs. It is held by
the core's rule (jobs.runs.lifecycle): while the hop running it is alive, and, between hops,
while the next hop waits in the queue (each hop hands it on). A worker killed mid-hop
frees it as soon as its session ends; the next chain takes it over at once and records
the killed hop lost.
"""

import logging
from typing import Any

from bibliotheca.conf import bibliotheca_settings
from jobs.exceptions import JobSkipped
from jobs.runs import lifecycle, locks

logger = logging.getLogger("bibliotheca")

CHAIN_JOB = "bibliotheca.import_purchase_records_by_collection"


def purchase_lock_key(collection_id: int) -> str:
    """Lease key of the purchase chain; the event import uses another key."""
    return f"bibliotheca:purchase_records:{collection_id}"


def take_new_lease(key: str, *, taken_by: int | None) -> tuple[str, str]:
    """A first hop's lease: (token, token of the chain it took over or "").

    Held by a live chain: JobSkipped naming the holder, with `lock_held` in the run's
    result (a manual run exits 3). Taken over from a dead chain: its running hop is
    recorded failed (worker lost)."""
    owner = locks.new_owner_token()
    lease = _acquire(key, owner, taken_by)
    if lease is None:
        holder = chain_holder(key)
        reason = lifecycle.holder_line(holder) if holder else f"lock {key} is held"
        raise JobSkipped(reason, details={"lock_held": holder or {"key": key}})
    if lease.taken_run and taken_by is not None:
        lifecycle.mark_lost(
            ids=[lease.taken_run],
            reason=(
                f"worker lost: its chain's lock {key} was taken over by run #{taken_by} "
                f"because its {lease.taken_reason} (process killed or crashed)"
            ),
            keep=taken_by,
        )
    return owner, lease.taken_from


def keep_lease(key: str, owner: str, run_id: int | None) -> bool | None:
    """Hold the chain's lease for this hop: True; it was gone and is retaken: False;
    held by another chain: None."""
    ours = locks.still_ours(key=key, owner=owner)
    if _acquire(key, owner, run_id) is None:
        return None
    return ours


def _acquire(key: str, owner: str, run_id: int | None) -> locks.LeaseHandle | None:
    # Outside a run (a hop called directly) the lease falls back to an expiry.
    return locks.acquire_lease(
        key=key, owner=owner, run_id=run_id, lease_seconds=bibliotheca_settings.LOCK_LEASE_SECONDS
    )


def chain_holder(key: str) -> dict[str, Any] | None:
    """jobs.runs.lifecycle.describe_holder, named as the chain of its current hop."""
    info = lifecycle.describe_holder(key)
    if info is not None and info.get("job") == CHAIN_JOB:
        info["owner"] = f"the chain of run #{info['run_id']}"
    return info
