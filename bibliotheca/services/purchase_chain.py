"""The per-collection purchase-record chain: lock, pages until the time budget, next hop.

A hop reads pages (several day windows at once: services.reading), writes them in page
order from its own thread (services.pages) until its time budget is spent (at least one
page), then queues the next hop with the position and the lock's token. The lease (per
collection, not the event import's) is taken by the first hop and extended by every
hop; a failure that will be retried keeps it, anything else and the chain's end free it.
"""

import logging
import time
from collections import deque
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from django.utils import timezone

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.models import Collection, Timestamp
from bibliotheca.services.pages import PROGRESS_KEYS, Decision, MarcPage, due_items, write_page
from bibliotheca.services.reading import PageReader
from bibliotheca.services.windows import ChainRange, Position, is_up_to_date
from jobs import locks
from jobs.context import current_run, flag_for_attention, report_progress, update_run_kwargs
from jobs.exceptions import JobSkipped
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import enqueue_job

logger = logging.getLogger("bibliotheca")

CHAIN_JOB = "bibliotheca.import_purchase_records_by_collection"
#: A hop reports progress at most this often (and always after its last page).
PROGRESS_EVERY_SECONDS = 1.0
#: A hop longer than this extends the lease again (it is extended when the hop starts).
EXTEND_EVERY_SECONDS = 60.0


def purchase_lock_key(collection_id: int) -> str:
    """Lease key of the purchase chain; the event import uses another key."""
    return f"bibliotheca:purchase_records:{collection_id}"


def import_purchase_records_hop(
    *,
    collection_id: int,
    current_day: datetime | None = None,
    offset: int = 1,
    lock_owner: str | None = None,
    force_reimport: bool = False,
    time_budget_seconds: float | None = None,
    until: datetime | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """One hop of the chain; returns counts for history and queues the next hop if needed.
    `since`..`until`: the chain's range (set by the first hop, carried by the others).
    The arguments are checked before (tasks.py), so no bad one takes the lock."""
    collection = Collection.objects.get(pk=collection_id)
    key = purchase_lock_key(collection_id)
    first_hop = lock_owner is None
    lock_owner, lease_lost = _take_lock(collection, key, lock_owner)
    try:
        start = current_day and Position(current_day=current_day, offset=offset)
        if first_hop or start is None:
            start, chain = _first_hop(collection, start, force_reimport, until, since, lock_owner)
        else:
            chain = ChainRange(since=since or start.current_day, until=until or timezone.now())
            start = _resume_after_retry(collection, start)
        budget = time_budget_seconds
        budget = bibliotheca_settings.HOP_TIME_BUDGET_SECONDS if budget is None else budget
        result = _import_pages(collection, start, chain, budget, key=key, owner=lock_owner)
        result.update(collection_id=collection_id, first_hop=first_hop, lease_lost=lease_lost)
        position: Position = result.pop("position")
        if is_up_to_date(position.current_day, chain.until):
            locks.release_lease(key=key, owner=lock_owner)
            return {**result, "done": True}
        next_run = enqueue_job(
            CHAIN_JOB,
            kwargs={
                "collection_id": collection_id,
                "current_day": position.current_day.isoformat(),
                "offset": position.offset,
                "lock_owner": lock_owner,
                "time_budget_seconds": time_budget_seconds,
                "since": chain.since.isoformat(),
                "until": chain.until.isoformat(),
            },
            trigger=JobRun.Trigger.CHAIN,
            parent=current_run(),
        )
    except BaseException as exc:
        _after_failure(collection, key, lock_owner, exc)
        raise
    return {**result, "next_run_id": next_run.pk}


def _take_lock(collection: Collection, key: str, owner: str | None) -> tuple[str, bool]:
    """The lease for a first hop (a new token) or the chain's (extended); (token, lost)."""
    if owner is None:
        owner = locks.new_owner_token()
        seconds = bibliotheca_settings.LOCK_LEASE_SECONDS
        if not locks.acquire_lease(key=key, owner=owner, lease_seconds=seconds):
            holder = locks.lease_holder(key)
            reason = f"lock {key} is held by {holder[0] if holder else 'another chain'}"
            logger.warning("purchase import of %r skipped: %s", collection.name, reason)
            raise JobSkipped(reason)  # the runner records the run `skipped`, no retry
        return owner, False
    kept = _keep_lease(key, owner)
    if kept is not True:
        # The seed's rule: warn and continue when the lease merely expired (retaken).
        # When another chain holds it, two chains would write one checkpoint (it could
        # move backwards): this chain stops, the other goes on.
        holder = (locks.lease_holder(key) or ("?",))[0]
        what = "retaken; continuing" if kept is False else f"now held by {holder}; chain stops"
        logger.warning(
            "purchase import of %r: lock %s expired between hops (%s)", collection.name, key, what
        )
        flag_for_attention(f"lease {key} lost mid-chain")
        if kept is None:
            raise JobSkipped(f"lock {key} was taken over by {holder}; this chain stops")
    return owner, kept is False


def _keep_lease(key: str, owner: str) -> bool | None:
    """Extend the chain's lease: True; expired and free, retaken: False; taken: None."""
    seconds = bibliotheca_settings.LOCK_LEASE_SECONDS
    if locks.extend_lease(key=key, owner=owner, lease_seconds=seconds):
        return True
    return False if locks.acquire_lease(key=key, owner=owner, lease_seconds=seconds) else None


def _first_hop(
    collection: Collection, start: Position | None, force_reimport: bool, until, since, owner: str
) -> tuple[Position, ChainRange]:
    """Where a chain starts and its range, recorded with the token in the hop's kwargs
    (a retry holds the same lock, reads the same range); the chain's counters reset."""
    now = timezone.now()
    timestamp = get_timestamp(collection)
    if start is None:  # resume at the checkpoint, or restart at 2014-01-01
        resume = None if force_reimport else timestamp.finish
        start = Position(current_day=resume or DEFAULT_START, offset=1)
    # The chain catches up to when it started; chasing a moving "now" would never end.
    chain = ChainRange(since=since or start.current_day, until=until or now)
    Timestamp.objects.filter(pk=timestamp.pk).update(
        start=now, counter=0, exception="", progress={k: 0 for k in PROGRESS_KEYS}
    )
    update_run_kwargs(
        lock_owner=owner,
        current_day=start.current_day.isoformat(),
        offset=start.offset,
        since=chain.since.isoformat(),
        until=chain.until.isoformat(),
    )
    return start, chain


def get_timestamp(collection: Collection) -> Timestamp:
    task = {"service_type": Timestamp.ServiceType.TASK}
    return Timestamp.objects.get_or_create(
        service=PURCHASE_RECORD_SERVICE, collection=collection, defaults=task
    )[0]


def _import_pages(
    collection: Collection, start: Position, chain: ChainRange, budget: float, **lease: str
) -> dict[str, Any]:
    """Read and write pages from `start` until the budget is spent or the chain is done,
    in page order as their items come in (2 x CONCURRENT_REQUESTS waiting at most). A
    failed read is raised after the pages before it are written; a failed write at once."""
    hop = _Hop(collection, chain, start, **lease)
    concurrency = bibliotheca_settings.CONCURRENT_REQUESTS
    waiting: deque[tuple[MarcPage, Future[Decision]]] = deque()
    error: BaseException | None = None
    deadline = time.monotonic() + budget
    with PageReader(collection, start, chain.until, deadline, concurrency) as reader:
        for page in reader.pages():
            if isinstance(page, BaseException):
                error = page
                break
            due = due_items(collection, page, now=timezone.now())
            waiting.append((page, reader.look_up(page, due)))
            while waiting and (waiting[0][1].done() or len(waiting) > 2 * concurrency):
                hop.write(*waiting.popleft())
        while waiting:
            hop.write(*waiting.popleft())
    hop.report()
    if error is not None:
        raise error
    return {
        **{k: hop.counts[k] - hop.initial[k] for k in PROGRESS_KEYS},
        "from": start.current_day.isoformat(),
        "to": hop.position.current_day.isoformat(),
        "offset": hop.position.offset,
        "position": hop.position,
    }


class _Hop:
    """A hop's writing, in page order from its own thread: the chain's counts, the
    lease (extended every EXTEND_EVERY_SECONDS) and the run's progress."""

    def __init__(
        self, collection: Collection, chain: ChainRange, start: Position, *, key: str, owner: str
    ) -> None:
        self.collection, self.chain, self.position = collection, chain, start
        self.key, self.owner = key, owner
        timestamp = get_timestamp(collection)
        self.timestamp_id = timestamp.pk
        self.counts = {k: int(timestamp.progress.get(k, 0)) for k in PROGRESS_KEYS}
        self.initial = dict(self.counts)
        self.extended_at = time.monotonic()
        self.report()

    def write(self, page: MarcPage, decision: Future[Decision]) -> None:
        self.counts = write_page(
            self.collection,
            page,
            decision.result(),  # raises the items request's error: nothing of it written
            self.counts,
            timestamp_id=self.timestamp_id,
            now=timezone.now(),
        )
        self.position = page.next
        if time.monotonic() - self.extended_at >= EXTEND_EVERY_SECONDS:
            self.extended_at = time.monotonic()
            if _keep_lease(self.key, self.owner) is None:  # no more pages are written
                raise JobSkipped(f"lock {self.key} was taken over mid-hop; this chain stops")
        if time.monotonic() - self.reported_at >= PROGRESS_EVERY_SECONDS:
            self.report()

    def report(self) -> None:
        """The run's progress: days of the range done, and the chain's counts so far."""
        self.reported_at = time.monotonic()
        report_progress(
            done=self.chain.days_done(self.position.current_day),
            total=self.chain.days,
            unit="days",
            **{k: self.counts[k] for k in ("pages", "records", "skipped")},
            current_day=self.position.current_day.isoformat(),
            hop_pages=self.counts["pages"] - self.initial["pages"],
        )


def _after_failure(collection: Collection, key: str, owner: str, exc: BaseException) -> None:
    """A failure the runner retries keeps the lease for the retry (its own decision,
    asked here); any other releases it (only ours: a takeover's stays) and is shown on
    the collection."""
    run, policy = current_run(), get_job(CHAIN_JOB).retry
    if run and run.job == CHAIN_JOB and policy.will_retry(attempt=run.attempt, error=exc):
        return
    locks.release_lease(key=key, owner=owner)
    if not isinstance(exc, JobSkipped):
        Timestamp.objects.filter(pk=get_timestamp(collection).pk).update(
            exception=f"{type(exc).__name__}: {exc}"[:5000]
        )
        logger.error("purchase import of %r stopped: %s", collection.name, exc)


def _resume_after_retry(collection: Collection, position: Position) -> Position:
    """A retry re-runs the failed hop's kwargs: skip the pages that hop wrote, if this
    chain moved the checkpoint (a force reimport's retry must not jump to the old one)."""
    run = current_run()
    if run is None or run.trigger != JobRun.Trigger.RETRY:
        return position
    timestamp = get_timestamp(collection)
    ours = int(timestamp.progress.get("pages", 0)) > 0
    if ours and timestamp.finish is not None and timestamp.finish > position.current_day:
        return Position(current_day=timestamp.finish, offset=1)
    return position
