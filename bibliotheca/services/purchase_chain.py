"""The per-collection purchase-record chain: a hop reads (services.reading) and writes
(services.pages) pages until its time budget is spent, then queues the next hop and hands
it the collection's lock (docs/bibliotheca.md: the steps, the lock, what a failure does)."""

import logging
import math
import time
from collections import deque
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.exceptions import RateLimited, RetryAfterTooLong
from bibliotheca.models import Collection, Timestamp
from bibliotheca.services.gaps import record_gap, retry_due_gaps
from bibliotheca.services.pages import PROGRESS_KEYS, Decision, MarcPage, due_items, write_page
from bibliotheca.services.reading import PageReader, ReadFailure
from bibliotheca.services.windows import ChainRange, Position, is_up_to_date
from jobs.exceptions import JobSkipped, TransientJobError
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import enqueue_job
from jobs.runs import locks
from jobs.runs.current import current_lease, current_run, flag_for_attention, update_run_kwargs
from jobs.runs.progress import report_progress

logger = logging.getLogger("bibliotheca")

CHAIN_JOB = "bibliotheca.import_purchase_records_by_collection"

#: A hop reports progress at most this often (and always after its last page).
PROGRESS_EVERY_SECONDS = 1.0
#: A hop longer than this checks again that its collection is enabled and its lease ours.
EXTEND_EVERY_SECONDS = 60.0


def purchase_lock_key(collection_id: int) -> str:
    """The chain's single-flight lock key; the event import uses another key."""
    return f"bibliotheca:purchase_records:{collection_id}"


def import_purchase_records_hop(
    *,
    collection_id: int,
    current_day: datetime | None = None,
    offset: int = 1,
    force_reimport: bool = False,
    time_budget_seconds: float | None = None,
    until: datetime | None = None,
    since: datetime | None = None,
    overlap_until: datetime | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """One hop of the chain; returns counts for history and queues the next hop if needed.
    `since`..`until`: the chain's range (set by the first hop, carried by the others);
    `overlap_until`: the checkpoint it resumed at; `not_before`: the API's Retry-After.
    A hop with no `current_day` is a chain's first (it records its position, so a retry
    of it is not)."""
    key = purchase_lock_key(collection_id)
    collection = _enabled_collection(collection_id)
    # A window after now is empty when read: the checkpoint must not move past purchases
    # not made yet (an `until` typed ahead), or they would never be read.
    until = until and min(until, timezone.now())
    first_hop = current_day is None
    lease = current_lease()
    took_over = first_hop and lease is not None and bool(lease.taken_from)
    lease_lost = not first_hop and _lease_lost(collection, key, lease)
    try:
        if current_day is None:
            start, chain = _first_hop(collection, force_reimport, until, since, took_over)
        else:
            start = Position(current_day=current_day, offset=offset)
            chain = ChainRange(
                since=since or start.current_day,
                until=until or timezone.now(),
                overlap_until=overlap_until,
            )
            start = _resume_after_retry(collection, start)
        hop_kwargs = {
            "collection_id": collection_id,
            "time_budget_seconds": time_budget_seconds,
            "since": chain.since.isoformat(),
            "until": chain.until.isoformat(),
            "overlap_until": chain.overlap_until and chain.overlap_until.isoformat(),
        }
        if not_before is not None and timezone.now() < not_before:  # delivered early
            return _queue_next(start, hop_kwargs, wait_until=not_before, result={"pages": 0})
        budget = time_budget_seconds
        budget = bibliotheca_settings.HOP_TIME_BUDGET_SECONDS if budget is None else budget
        deadline = time.monotonic() + budget
        hop = _Hop(collection, chain, start, key=key)
        failure = _import_pages(hop, deadline)
        result: dict[str, Any] = {
            **hop.result(start),
            "collection_id": collection_id,
            "first_hop": first_hop,
            "lease_lost": lease_lost,
        }
        if took_over:
            result["took_over"] = True
        if failure is not None and (wait_until := _after_read_failure(hop, failure, result)):
            return _queue_next(hop.position, hop_kwargs, wait_until=wait_until, result=result)
        if is_up_to_date(hop.position.current_day, chain.until):
            result.update(retry_due_gaps(collection, chain_started=chain.until, deadline=deadline))
            if not result["gaps_left"]:
                return {**result, "done": True}  # the runner frees the lock
    except BaseException as exc:
        _after_failure(collection, exc)
        raise
    return _queue_next(hop.position, hop_kwargs, result=result)


def _queue_next(
    position: Position,
    hop_kwargs: dict[str, Any],
    *,
    result: dict[str, Any],
    wait_until: datetime | None = None,
) -> dict[str, Any]:
    """Queue the chain's next hop at `position` (with `wait_until`: not before then,
    and told so); returns the hop's result with the next run's id."""
    kwargs = {
        **hop_kwargs,
        "current_day": position.current_day.isoformat(),
        "offset": position.offset,
    }
    delay = None
    if wait_until is not None:
        kwargs["not_before"] = wait_until.isoformat()
        delay = max(0.0, (wait_until - timezone.now()).total_seconds())
        result = {**result, "waiting_until": wait_until.isoformat()}
    run = current_run()
    with transaction.atomic():
        next_run = enqueue_job(
            CHAIN_JOB,
            kwargs={k: v for k, v in kwargs.items() if v is not None},
            trigger=JobRun.Trigger.CHAIN,
            parent=run,
            delay_seconds=delay,
        )
        if run is not None:
            locks.hand_over_leases(from_run=run.pk, to_run=next_run.pk)
    return {**result, "next_run_id": next_run.pk}


def _enabled_collection(collection_id: int) -> Collection:
    """The collection, checked before any request: deleted or disabled, the chain stops
    (recorded `skipped`; the runner frees its lock)."""
    collection = Collection.objects.filter(pk=collection_id).first()
    if collection is not None and collection.enabled:
        return collection
    what = (
        f"collection #{collection_id} was deleted"
        if collection is None
        else f"collection {collection.name!r} is disabled"
    )
    logger.warning("purchase import stopped: %s", what)
    raise JobSkipped(f"{what}; its chain stops, no request sent")


def _lease_lost(collection: Collection, key: str, lease: locks.LeaseHandle | None) -> bool:
    """Whether this hop's lock was not handed to it but retaken (free, or its holder
    dead): warned and flagged, and the chain continues. A lock another chain holds never
    gets here: the runner records the hop skipped, naming that chain."""
    if lease is None or lease.kept:
        return False
    logger.warning(
        "purchase import of %r: lock %s lost between hops (retaken; continuing)",
        collection.name,
        key,
    )
    flag_for_attention(f"lease {key} lost mid-chain")
    return True


def _first_hop(
    collection: Collection,
    force_reimport: bool,
    until: datetime | None,
    since: datetime | None,
    took_over: bool,
) -> tuple[Position, ChainRange]:
    """Where a chain starts (its checkpoint less BIBLIOTHECA_OVERLAP_MINUTES, or
    2014-01-01) and its range, recorded in the hop's kwargs. The counters reset, unless it
    takes over a chain that died (its pages read again are then not counted twice)."""
    now = timezone.now()
    timestamp = get_timestamp(collection)
    overlap_until = None
    resume = None if force_reimport else timestamp.finish
    begin = resume or DEFAULT_START
    if resume is not None:
        begin = max(DEFAULT_START, resume - timedelta(minutes=bibliotheca_settings.OVERLAP_MINUTES))
        overlap_until = resume if begin < resume else None
    # The chain catches up to when it started; chasing a moving "now" would never end.
    chain = ChainRange(since=since or begin, until=until or now, overlap_until=overlap_until)
    progress: dict[str, Any] = {k: 0 for k in PROGRESS_KEYS}
    if took_over and not force_reimport:
        progress = {**progress, **timestamp.progress}
    progress["current_day"] = begin.isoformat()
    Timestamp.objects.filter(pk=timestamp.pk).update(
        start=now, counter=progress["records"], exception="", progress=progress
    )
    update_run_kwargs(
        current_day=begin.isoformat(),
        offset=1,
        since=chain.since.isoformat(),
        until=chain.until.isoformat(),
        **({"overlap_until": overlap_until.isoformat()} if overlap_until else {}),
    )
    return Position(current_day=begin, offset=1), chain


def _after_read_failure(
    hop: "_Hop", failure: ReadFailure, result: dict[str, Any]
) -> datetime | None:
    """What a page that could not be read does to the chain (the pages before it are
    written): when to queue the next hop, for a long Retry-After; None after recording a
    gap (a transient failure on the last attempt); else it raises."""
    error, conf = failure.error, bibliotheca_settings
    asked = error.retry_after if isinstance(error, RateLimited) else None
    if asked is not None and asked > conf.RETRY_AFTER_MAX_SECONDS:
        if asked > conf.RETRY_AFTER_LIMIT_SECONDS:
            raise RetryAfterTooLong(
                f"{error}; the API asks to wait {asked:.0f} s, more than "
                f"BIBLIOTHECA_RETRY_AFTER_LIMIT_SECONDS ({conf.RETRY_AFTER_LIMIT_SECONDS:.0f} s):"
                " the chain stops, re-run it later"
            ) from error
        # the gate's remaining time has a fraction
        return timezone.now() + timedelta(seconds=math.ceil(asked))
    run, policy = current_run(), get_job(CHAIN_JOB).retry
    last_attempt = not (run and policy.will_retry(attempt=run.attempt, error=error))
    if not isinstance(error, TransientJobError) or not last_attempt:
        raise error
    if hop.counts["gaps"] >= int(conf.GAPS_PER_CHAIN):
        raise error  # several windows failing for good: the API, not one day
    day = failure.position.current_day
    end = hop.chain.window_end(day)
    hop.counts = record_gap(
        hop.collection,
        day=day,
        window_end=end,
        error=error,
        attempts=run.attempt if run else 1,
        timestamp_id=hop.timestamp_id,
        counts=hop.counts,
    )
    hop.position = Position(current_day=end, offset=1)
    logger.error(
        "purchase import of %r: window %s..%s recorded as a gap after %s attempt(s): %s",
        hop.collection.name,
        day.isoformat(),
        end.isoformat(),
        run.attempt if run else 1,
        error,
    )
    result.update(gap=day.isoformat(), gaps=result.get("gaps", 0) + 1, to=end.isoformat())
    result["offset"] = 1
    return None


def get_timestamp(collection: Collection) -> Timestamp:
    found = Timestamp.objects.get_or_create(service=PURCHASE_RECORD_SERVICE, collection=collection)
    return found[0]


def _import_pages(hop: "_Hop", deadline: float) -> ReadFailure | None:
    """Read and write pages from the hop's position until the deadline or the chain's
    end, in page order as their items come in (2 x CONCURRENT_REQUESTS waiting at most).
    A page that could not be read, or whose items could not be, is returned after the
    pages before it are written (none after it); a failed write is raised at once."""
    collection, concurrency = hop.collection, bibliotheca_settings.CONCURRENT_REQUESTS
    waiting: deque[tuple[MarcPage, Future[Decision]]] = deque()
    failure: ReadFailure | None = None

    def write_first() -> ReadFailure | None:
        page, decision = waiting.popleft()
        try:
            ready = decision.result()
        except Exception as exc:  # the items request's error: nothing of the page written
            waiting.clear()
            return ReadFailure(page.position, exc)
        hop.write(page, ready)
        return None

    with PageReader(collection, hop.position, hop.chain, deadline, concurrency) as reader:
        for page in reader.pages():
            if isinstance(page, ReadFailure):
                failure = page
                break
            due = due_items(collection, page, now=timezone.now())
            waiting.append((page, reader.look_up(page, due)))
            while (
                failure is None
                and waiting
                and (waiting[0][1].done() or len(waiting) > 2 * concurrency)
            ):
                failure = write_first()
            if failure is not None:
                break
        while waiting:
            failure = write_first() or failure
    hop.report()
    return failure


class _Hop:
    """A hop's writing, in page order from its own thread: the chain's counts, the
    lease (checked every EXTEND_EVERY_SECONDS, with the collection) and the run's
    progress."""

    def __init__(self, collection: Collection, chain: ChainRange, start: Position, *, key: str):
        self.collection, self.chain, self.position = collection, chain, start
        run = current_run()
        self.key, self.run_id = key, run.pk if run else None
        timestamp = get_timestamp(collection)
        self.timestamp_id = timestamp.pk
        self.counts: dict[str, Any] = {
            **{k: int(timestamp.progress.get(k, 0)) for k in PROGRESS_KEYS},
            "counted_until": timestamp.progress.get("counted_until"),
        }
        self.initial = dict(self.counts)
        self.extended_at = time.monotonic()
        self.report()

    def write(self, page: MarcPage, decision: Decision) -> None:
        self.counts = write_page(
            self.collection,
            page,
            decision,
            self.counts,
            timestamp_id=self.timestamp_id,
            now=timezone.now(),
        )
        self.position = page.next
        if time.monotonic() - self.extended_at >= EXTEND_EVERY_SECONDS:
            self.extended_at = time.monotonic()
            if not Collection.objects.filter(pk=self.collection.pk, enabled=True).exists():
                raise JobSkipped(
                    f"collection {self.collection.name!r} was disabled or deleted during the"
                    " hop; its chain stops"
                )
            if self.run_id is not None and not locks.bound_to_run(key=self.key, run_id=self.run_id):
                raise JobSkipped(f"lock {self.key} was taken over mid-hop; this chain stops")
        if time.monotonic() - self.reported_at >= PROGRESS_EVERY_SECONDS:
            self.report()

    def result(self, start: Position) -> dict[str, Any]:
        """This hop's share of the chain's counts, and where it read."""
        return {
            **{k: self.counts[k] - self.initial[k] for k in PROGRESS_KEYS},
            "from": start.current_day.isoformat(),
            "to": self.position.current_day.isoformat(),
            "offset": self.position.offset,
        }

    def report(self) -> None:
        """The run's progress: days of the range done, and the chain's counts so far."""
        self.reported_at = time.monotonic()
        report_progress(
            done=self.chain.days_done(self.position.current_day),
            total=self.chain.days,
            unit="days",
            **{k: self.counts[k] for k in ("pages", "records", "skipped", "gaps")},
            current_day=self.position.current_day.isoformat(),
            hop_pages=self.counts["pages"] - self.initial["pages"],
        )


def _after_failure(collection: Collection, exc: BaseException) -> None:
    """A write refused because the collection was deleted during the hop is a clean stop
    (raised). A failure that stops the chain (not a stop, not one the runner retries: its
    own decision, asked here) is shown on the collection."""
    if isinstance(exc, IntegrityError) and not Collection.objects.filter(pk=collection.pk).exists():
        logger.warning("purchase import stopped: collection #%s deleted mid-hop", collection.pk)
        raise JobSkipped(
            f"collection #{collection.pk} was deleted during the hop; its chain stops"
        ) from exc
    run, policy = current_run(), get_job(CHAIN_JOB).retry
    if run and run.job == CHAIN_JOB and policy.will_retry(attempt=run.attempt, error=exc):
        return
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
