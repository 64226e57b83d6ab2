"""The per-collection purchase-record chain: lock, several pages per hop, next hop.

A hop reads pages until its time budget is spent (always at least one), then queues
the next hop with the position and the lock owner token. The lease is per collection
(distinct from any event-import lock), taken by the first hop and extended by every
hop; transient errors keep it (the retry run carries the token), terminal errors and
the end of the chain release it.
"""

import logging
import time
from datetime import datetime
from typing import Any

from django.utils import timezone

from bibliotheca.conf import DEFAULT_START, bibliotheca_settings
from bibliotheca.models import Collection, Timestamp
from bibliotheca.services.client import BibliothecaClient
from bibliotheca.services.purchase_records import (
    get_start,
    get_timestamp,
    import_page,
    start_chain,
)
from bibliotheca.services.windows import Position, is_up_to_date
from jobs import locks
from jobs.context import current_run, flag_for_attention, report_progress
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import enqueue_job

logger = logging.getLogger("bibliotheca")

CHAIN_JOB = "bibliotheca.import_purchase_records_by_collection"


def purchase_lock_key(collection_id: int) -> str:
    """Lease key of the purchase chain; the event import uses another key."""
    return f"bibliotheca:purchase_records:{collection_id}"


def import_purchase_records_hop(
    *,
    collection_id: int,
    current_day: str | None = None,
    offset: int = 1,
    lock_owner: str | None = None,
    force_reimport: bool = False,
    time_budget_seconds: float | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """One hop of the chain; returns counts for history and queues the next hop if needed."""
    collection = Collection.objects.get(pk=collection_id)
    key = purchase_lock_key(collection_id)
    lease_seconds = bibliotheca_settings.LOCK_LEASE_SECONDS
    first_hop = lock_owner is None
    lease_lost = False
    if first_hop:
        lock_owner = locks.new_owner_token()
        if locks.acquire_lease(key=key, owner=lock_owner, lease_seconds=lease_seconds) is None:
            holder = locks.lease_holder(key)
            reason = f"lock {key} is held by {holder[0] if holder else 'another chain'}"
            logger.warning("purchase import of %r skipped: %s", collection.name, reason)
            return {"skipped": True, "reason": reason, "collection_id": collection_id}
        _carry_owner_into_retries(lock_owner)
    elif not locks.extend_lease(key=key, owner=lock_owner, lease_seconds=lease_seconds):
        # The seed's rule: warn and continue; retake the lease if nobody else has it.
        lease_lost = True
        retaken = locks.acquire_lease(key=key, owner=lock_owner, lease_seconds=lease_seconds)
        logger.warning(
            "purchase import of %r: workflow lock %s expired between hops (%s); continuing",
            collection.name,
            key,
            "retaken" if retaken else f"now held by {(locks.lease_holder(key) or ('?',))[0]}",
        )
        flag_for_attention(f"lease {key} lost mid-chain")

    now = timezone.now()
    # The chain catches up to when it started; chasing a moving "now" would never end.
    end = datetime.fromisoformat(until) if until else now
    if current_day is not None:
        start = datetime.fromisoformat(current_day)
    elif force_reimport and first_hop:
        start = DEFAULT_START
    else:  # a first hop, or the retry of one: resume at the checkpoint
        start = get_start(collection)
    if _is_retry() and current_day is not None:
        start, offset = _resume_after_retry(collection, Position(current_day=start, offset=offset))
    if first_hop:
        start_chain(collection, now=now)
    try:
        result = _run_pages(
            collection,
            Position(current_day=start, offset=offset),
            time_budget_seconds=(
                bibliotheca_settings.HOP_TIME_BUDGET_SECONDS
                if time_budget_seconds is None
                else time_budget_seconds
            ),
            key=key,
            owner=lock_owner,
            until=end,
        )
    except BaseException as exc:
        if not _will_be_retried(exc):
            locks.release_lease(key=key, owner=lock_owner)
            Timestamp.objects.filter(pk=get_timestamp(collection).pk).update(
                exception=f"{type(exc).__name__}: {exc}"[:5000]
            )
            logger.error("purchase import of %r stopped: %s", collection.name, exc)
        raise
    result.update(collection_id=collection_id, first_hop=first_hop, lease_lost=lease_lost)
    position: Position = result.pop("position")
    if is_up_to_date(position.current_day, end):
        locks.release_lease(key=key, owner=lock_owner)
        result["done"] = True
        return result
    next_run = enqueue_job(
        CHAIN_JOB,
        kwargs={
            "collection_id": collection_id,
            "current_day": position.current_day.isoformat(),
            "offset": position.offset,
            "lock_owner": lock_owner,
            "time_budget_seconds": time_budget_seconds,
            "until": end.isoformat(),
        },
        trigger=JobRun.Trigger.CHAIN,
        parent=current_run(),
    )
    result["next_run_id"] = next_run.pk
    return result


def _run_pages(
    collection: Collection,
    position: Position,
    *,
    time_budget_seconds: float,
    key: str,
    owner: str,
    until: datetime,
) -> dict[str, Any]:
    client = BibliothecaClient.for_collection(collection)
    deadline = time.monotonic() + time_budget_seconds
    totals = {"pages": 0, "records": 0, "skipped": 0, "new_pools": 0, "applies_queued": 0}
    totals["items_requests"] = 0
    started_at = position.current_day.isoformat()
    while not is_up_to_date(position.current_day, until):
        page = import_page(collection, client, position, until=until, now=timezone.now())
        for name in totals:
            totals[name] += 1 if name == "pages" else getattr(page, name)
        position = page.next
        locks.extend_lease(
            key=key, owner=owner, lease_seconds=bibliotheca_settings.LOCK_LEASE_SECONDS
        )
        report_progress(
            done=totals["pages"], unit="pages", current_day=position.current_day.isoformat()
        )
        if time.monotonic() >= deadline:
            break
    return {
        **totals,
        "from": started_at,
        "position": position,
        "to": position.current_day.isoformat(),
        "offset": position.offset,
    }


def _is_retry() -> bool:
    run = current_run()
    return run is not None and run.trigger == JobRun.Trigger.RETRY


def _resume_after_retry(collection: Collection, position: Position) -> tuple[datetime, int]:
    """A retry re-runs the failed hop's kwargs; skip the pages that hop already committed."""
    finish = get_start(collection)
    if finish > position.current_day:
        return finish, 1
    return position.current_day, position.offset


def _carry_owner_into_retries(owner: str) -> None:
    """Put the token in this run's kwargs: the runner re-queues a failed run with them."""
    run = current_run()
    if run is None:
        return
    run.kwargs["lock_owner"] = owner
    JobRun.objects.filter(pk=run.pk).update(kwargs=run.kwargs)


def _will_be_retried(exc: BaseException) -> bool:
    """Mirror of the runner's decision, so the lease is kept exactly when a retry follows."""
    run = current_run()
    if run is None or run.job != CHAIN_JOB:
        return False
    policy = get_job(CHAIN_JOB).retry
    return policy.delay_for(attempt=run.attempt, error=exc, rng=lambda low, high: high) is not None
