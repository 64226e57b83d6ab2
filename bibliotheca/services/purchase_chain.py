"""The per-collection purchase-record chain: lock, pages until the time budget, next hop.

A hop reads pages (several day windows at once: services.reading) and writes them in
page order from its own thread, one transaction per page with its checkpoint
(services.pages), until its time budget is spent (always at least one page); then it
queues the next hop with the position and the lock's owner token. The lease is per
collection (distinct from any event-import lock), taken by the first hop and extended
by every hop; a failure that will be retried keeps it (the retry carries the token),
anything else, and the end of the chain, releases it.
"""

import logging
import math
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
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
from jobs.exceptions import BadJobArguments, JobSkipped
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


@dataclass(frozen=True)
class HopArguments:
    """A hop's arguments, checked (parse_hop_arguments)."""

    current_day: datetime | None
    offset: int
    since: datetime | None
    until: datetime | None
    time_budget_seconds: float


def parse_hop_arguments(
    *,
    current_day: str | None = None,
    offset: int = 1,
    since: str | None = None,
    until: str | None = None,
    time_budget_seconds: float | None = None,
    **_: Any,
) -> HopArguments:
    """The hop's arguments, or BadJobArguments naming the first bad one: checked before
    any lock is taken, so a mistyped run fails without holding the collection's lock."""
    moments = {}
    for name, value in (("current_day", current_day), ("since", since), ("until", until)):
        try:
            moment = None if value is None else datetime.fromisoformat(value)
        except (TypeError, ValueError):
            moment = None
        if value is not None and (moment is None or moment.tzinfo is None):
            raise BadJobArguments(
                f"{CHAIN_JOB}: {name}={value!r} is not an ISO date-time with a zone"
            )
        moments[name] = moment
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 1:
        raise BadJobArguments(f"{CHAIN_JOB}: offset={offset!r} is not a 1-based offset")
    budget = (
        bibliotheca_settings.HOP_TIME_BUDGET_SECONDS
        if time_budget_seconds is None
        else time_budget_seconds
    )
    if not isinstance(budget, int | float) or not math.isfinite(budget) or budget < 0:
        raise BadJobArguments(f"{CHAIN_JOB}: time_budget_seconds={budget!r} is not >= 0")
    return HopArguments(offset=offset, time_budget_seconds=float(budget), **moments)


def import_purchase_records_hop(
    *,
    collection_id: int,
    lock_owner: str | None = None,
    force_reimport: bool = False,
    **arguments: Any,
) -> dict[str, Any]:
    """One hop of the chain; returns counts for history and queues the next hop if needed.

    `arguments`: current_day, offset, since, until, time_budget_seconds (see
    parse_hop_arguments). `since` and `until` are the chain's range (set by the first
    hop, carried by every hop): `until` is when the chain started, `since` where it
    started reading.
    """
    args = parse_hop_arguments(**arguments)
    collection = Collection.objects.filter(pk=collection_id).first()
    if collection is None:
        raise BadJobArguments(f"{CHAIN_JOB}: no collection {collection_id}")
    key = purchase_lock_key(collection_id)
    first_hop = lock_owner is None
    lock_owner, lease_lost = _take_lock(collection, key, lock_owner)
    try:
        start, chain = _starting_point(collection, args, first_hop, force_reimport, lock_owner)
        result = _import_pages(
            collection, start, chain, args.time_budget_seconds, key=key, owner=lock_owner
        )
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
                "time_budget_seconds": arguments.get("time_budget_seconds"),
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
    lease_seconds = bibliotheca_settings.LOCK_LEASE_SECONDS
    if owner is None:
        owner = locks.new_owner_token()
        if locks.acquire_lease(key=key, owner=owner, lease_seconds=lease_seconds) is None:
            holder = locks.lease_holder(key)
            reason = f"lock {key} is held by {holder[0] if holder else 'another chain'}"
            logger.warning("purchase import of %r skipped: %s", collection.name, reason)
            raise JobSkipped(reason)  # the runner records the run `skipped`, no retry
        return owner, False
    if locks.extend_lease(key=key, owner=owner, lease_seconds=lease_seconds):
        return owner, False
    # The seed's rule: warn and continue, when the lease merely expired and we can
    # retake it. When another chain holds it now, two chains would write one checkpoint
    # (it could move backwards): this chain stops, the other goes on.
    retaken = locks.acquire_lease(key=key, owner=owner, lease_seconds=lease_seconds)
    holder = None if retaken else (locks.lease_holder(key) or ("?",))[0]
    logger.warning(
        "purchase import of %r: workflow lock %s expired between hops (%s)",
        collection.name,
        key,
        "retaken; continuing" if retaken else f"now held by {holder}; this chain stops",
    )
    flag_for_attention(f"lease {key} lost mid-chain")
    if not retaken:
        raise JobSkipped(f"lock {key} was taken over by {holder}; this chain stops")
    return owner, True


def _starting_point(
    collection: Collection,
    args: HopArguments,
    first_hop: bool,
    force_reimport: bool,
    owner: str,
) -> tuple[Position, ChainRange]:
    """Where this hop starts and the chain's range; a first hop records them (and the
    token) in its kwargs, so its retry holds the same lock and reads the same range."""
    now = timezone.now()
    # The chain catches up to when it started; chasing a moving "now" would never end.
    until = args.until or now
    if args.current_day is not None:
        start = Position(current_day=args.current_day, offset=args.offset)
    elif force_reimport and first_hop:
        start = Position(current_day=DEFAULT_START, offset=args.offset)
    else:  # a first hop: resume at the checkpoint
        start = Position(current_day=get_timestamp(collection).finish or DEFAULT_START, offset=1)
    chain = ChainRange(since=args.since or start.current_day, until=until)
    if first_hop:
        Timestamp.objects.filter(pk=get_timestamp(collection).pk).update(
            start=now, counter=0, exception="", progress={k: 0 for k in PROGRESS_KEYS}
        )
        update_run_kwargs(
            lock_owner=owner,
            current_day=start.current_day.isoformat(),
            offset=start.offset,
            since=chain.since.isoformat(),
            until=chain.until.isoformat(),
        )
    elif _is_retry():
        start = _resume_after_retry(collection, start)
    return start, chain


def get_timestamp(collection: Collection) -> Timestamp:
    timestamp, _ = Timestamp.objects.get_or_create(
        service=PURCHASE_RECORD_SERVICE,
        collection=collection,
        defaults={"service_type": Timestamp.ServiceType.TASK},
    )
    return timestamp


def _import_pages(
    collection: Collection,
    start: Position,
    chain: ChainRange,
    budget_seconds: float,
    *,
    key: str,
    owner: str,
) -> dict[str, Any]:
    """Read and write pages from `start` until the budget is spent or the chain is done.

    Pages are written in page order as their items answers come in; at most
    CONCURRENT_REQUESTS pages wait for theirs. A failed read is raised after the pages
    before it are written; a failed write stops the hop at once.
    """
    writer = _HopWriter(collection, chain, start, key=key, owner=owner)
    concurrency = bibliotheca_settings.CONCURRENT_REQUESTS
    deadline = time.monotonic() + budget_seconds
    waiting: deque[tuple[MarcPage, Future[Decision]]] = deque()
    error: BaseException | None = None
    with PageReader(
        collection, start, until=chain.until, deadline=deadline, concurrency=concurrency
    ) as reader:
        for page in reader.pages():
            if isinstance(page, BaseException):
                error = page
                break
            due = due_items(collection, page, now=timezone.now())
            waiting.append((page, reader.look_up(page, due)))
            while waiting and (waiting[0][1].done() or len(waiting) > concurrency):
                writer.write(*waiting.popleft())
        while waiting:
            writer.write(*waiting.popleft())
    writer.report()
    if error is not None:
        raise error
    return {**writer.result(), "requests_retried": reader.retries}


class _HopWriter:
    """Writes a hop's pages in order from the hop's thread; keeps the lease and the
    run's progress up to date."""

    def __init__(
        self, collection: Collection, chain: ChainRange, start: Position, *, key: str, owner: str
    ) -> None:
        self.collection = collection
        self.chain = chain
        self.start = self.position = start
        self.key, self.owner = key, owner
        timestamp = get_timestamp(collection)
        self.timestamp_id = timestamp.pk
        self.counts: dict[str, Any] = {k: int(timestamp.progress.get(k, 0)) for k in PROGRESS_KEYS}
        self.initial = dict(self.counts)
        self.extended_at = self.reported_at = time.monotonic()
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
        now = time.monotonic()
        if now - self.extended_at >= EXTEND_EVERY_SECONDS:
            self._extend_lease()
            self.extended_at = now
        if now - self.reported_at >= PROGRESS_EVERY_SECONDS:
            self.report()

    def report(self) -> None:
        """The run's progress: days of the range done, and the chain's counts so far."""
        self.reported_at = time.monotonic()
        report_progress(
            done=self.chain.days_done(self.position.current_day),
            total=self.chain.days,
            unit="days",
            pages=self.counts["pages"],
            records=self.counts["records"],
            skipped=self.counts["skipped"],
            current_day=self.position.current_day.isoformat(),
            hop_pages=self.counts["pages"] - self.initial["pages"],
        )

    def result(self) -> dict[str, Any]:
        """This hop's counts and where it ended."""
        return {
            **{k: self.counts[k] - self.initial[k] for k in PROGRESS_KEYS},
            "from": self.start.current_day.isoformat(),
            "to": self.position.current_day.isoformat(),
            "offset": self.position.offset,
            "position": self.position,
        }

    def _extend_lease(self) -> None:
        lease = bibliotheca_settings.LOCK_LEASE_SECONDS
        if not locks.extend_lease(
            key=self.key, owner=self.owner, lease_seconds=lease
        ) and not locks.acquire_lease(key=self.key, owner=self.owner, lease_seconds=lease):
            # Another chain took the lock mid-hop: no more pages are written.
            raise JobSkipped(f"lock {self.key} was taken over mid-hop; this chain stops")


def _after_failure(collection: Collection, key: str, owner: str, exc: BaseException) -> None:
    """A failure that will not be retried releases the lease and is shown on the
    collection; one that will keeps the lease for the retry."""
    if _will_be_retried(exc):
        return
    locks.release_lease(key=key, owner=owner)  # only ours: a takeover's lease stays
    if not isinstance(exc, JobSkipped):
        Timestamp.objects.filter(pk=get_timestamp(collection).pk).update(
            exception=f"{type(exc).__name__}: {exc}"[:5000]
        )
        logger.error("purchase import of %r stopped: %s", collection.name, exc)


def _is_retry() -> bool:
    run = current_run()
    return run is not None and run.trigger == JobRun.Trigger.RETRY


def _resume_after_retry(collection: Collection, position: Position) -> Position:
    """A retry re-runs the failed hop's kwargs; skip the pages that hop already wrote.

    The checkpoint counts only if this chain moved it (its page counter, reset when the
    chain started, is above 0): a force reimport's retry must not jump to the old one.
    """
    timestamp = get_timestamp(collection)
    ours = int(timestamp.progress.get("pages", 0)) > 0
    if ours and timestamp.finish is not None and timestamp.finish > position.current_day:
        return Position(current_day=timestamp.finish, offset=1)
    return position


def _will_be_retried(exc: BaseException) -> bool:
    """The runner's own decision, so the lease is kept exactly when a retry follows."""
    run = current_run()
    if run is None or run.job != CHAIN_JOB:
        return False
    return get_job(CHAIN_JOB).retry.will_retry(attempt=run.attempt, error=exc)
