"""The per-collection purchase-record chain: lock, several pages per hop, next hop.

A hop reads pages until its time budget is spent (always at least one), then queues
the next hop with the position and the lock owner token. The lease is per collection
(distinct from any event-import lock), taken by the first hop and extended by every
hop; transient errors keep it (the retry run carries the token), terminal errors and
the end of the chain release it.
"""

import contextvars
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, connections
from django.utils import timezone

from bibliotheca.conf import DEFAULT_START, bibliotheca_settings
from bibliotheca.models import Collection, Timestamp
from bibliotheca.services.client import BibliothecaClient
from bibliotheca.services.purchase_records import (
    APPLY_JOB,
    ApplyRun,
    PageGroup,
    ReadPage,
    fetch_page,
    finish_group,
    get_start,
    get_timestamp,
    look_up_items,
    read_page,
    start_chain,
)
from bibliotheca.services.windows import Position, is_up_to_date, next_position, window_end
from bibliotheca.services.writer_process import ForkedPageWriter
from jobs import locks
from jobs.context import current_run, flag_for_attention, report_progress, update_run_kwargs
from jobs.exceptions import JobSkipped
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import enqueue_job, queue_inserted_run

logger = logging.getLogger("bibliotheca")

CHAIN_JOB = "bibliotheca.import_purchase_records_by_collection"
#: A hop reports progress at most this often (and always after its last page).
PROGRESS_EVERY_SECONDS = 1.0
#: A hop commits its pages (and queues their apply job) at least this often...
COMMIT_EVERY_SECONDS = 1.0
#: ... and at least every this many pages (at most 500 items per apply job). 1: the
#: checkpoint is committed after every page, as the issue asks. Grouping 10 pages per
#: commit measured within noise of it (docs/bibliotheca.md "Benchmark") and re-reads up
#: to 10 pages after a failure.
COMMIT_EVERY_PAGES = 1
#: The applies of consecutive pages share one apply run, handed to the apply cluster
#: once it holds this many items or is this old (and when the hop ends): 200 runs of
#: 50 items cost the apply cluster about 1.5 s more CPU than 40 runs of 250.
APPLY_RUN_ITEMS = 150
APPLY_RUN_SECONDS = 1.0
#: Groups a hop's writer holds not written yet (items looked up or being looked up,
#: statement not run): the hop reads at most this far (plus the pipe's
#: writer_process.MAX_AHEAD) ahead of the checkpoint, and re-reads as much after a
#: crash. A full page's lookup and statement take about 3 times as long as reading
#: the next page: with 3 the hop waited on the writer for a third of its time (inline
#: A/B, 6 rounds each: median 1.26x of the limit with 3, 1.11x with 6, 1.15x with 12).
GROUPS_IN_FLIGHT = 8
#: Threads of a hop's writer that look items up: two pages' lookups wait on the
#: database and the API at once.
ITEMS_THREADS = 2
#: A hop longer than this extends the lease again (it is extended when the hop starts).
EXTEND_EVERY_SECONDS = 60.0


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
    since: str | None = None,
) -> dict[str, Any]:
    """One hop of the chain; returns counts for history and queues the next hop if needed.

    `since` and `until` are the chain's backfill range (set by the first hop, carried by
    every hop): `until` is when the chain started, `since` where it started reading.
    """
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
            raise JobSkipped(reason)  # the runner records the run `skipped`, no retry
    elif not locks.extend_lease(key=key, owner=lock_owner, lease_seconds=lease_seconds):
        # The seed's rule: warn and continue, when the lease merely expired and we can
        # retake it. When another chain holds it now, two chains would write one
        # checkpoint (it could move backwards): this chain stops, the other goes on.
        lease_lost = True
        retaken = locks.acquire_lease(key=key, owner=lock_owner, lease_seconds=lease_seconds)
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

    now = timezone.now()
    # The chain catches up to when it started; chasing a moving "now" would never end.
    end = datetime.fromisoformat(until) if until else now
    if current_day is not None:
        start = datetime.fromisoformat(current_day)
    elif force_reimport and first_hop:
        start = DEFAULT_START
    else:  # a first hop: resume at the checkpoint
        start = get_start(collection)
    range_start = datetime.fromisoformat(since) if since else start
    if first_hop:
        start_chain(collection, now=now)
        # A retry of this hop is queued with these: same lock, same range, same start.
        update_run_kwargs(
            lock_owner=lock_owner,
            current_day=start.isoformat(),
            offset=offset,
            since=range_start.isoformat(),
            until=end.isoformat(),
        )
    elif _is_retry():
        start, offset = _resume_after_retry(collection, Position(current_day=start, offset=offset))
    chain = _Range(since=range_start, until=end)
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
            chain=chain,
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
            "since": range_start.isoformat(),
            "until": end.isoformat(),
        },
        trigger=JobRun.Trigger.CHAIN,
        parent=current_run(),
    )
    result["next_run_id"] = next_run.pk
    return result


@dataclass(frozen=True)
class _Range:
    """The chain's backfill range, in days for the run's progress bar."""

    since: datetime
    until: datetime

    @property
    def days(self) -> int:
        return _whole_days(self.since, self.until)

    def days_done(self, current_day: datetime) -> int:
        return min(self.days, _whole_days(self.since, current_day))


def _whole_days(start: datetime, end: datetime) -> int:
    """Day windows from start to end (the last one may be partial), 0 if end <= start."""
    return max(0, math.ceil((end - start).total_seconds() / 86400))


def _report(chain: _Range, current_day: datetime, totals: dict[str, int], hop_pages: int) -> None:
    """The run's progress: days of the range done, and the chain's counts so far."""
    report_progress(
        done=chain.days_done(current_day),
        total=chain.days,
        unit="days",
        pages=int(totals.get("pages", 0)),
        records=int(totals.get("records", 0)),
        skipped=int(totals.get("skipped", 0)),
        current_day=current_day.isoformat(),
        hop_pages=hop_pages,
    )


def _run_pages(
    collection: Collection,
    position: Position,
    *,
    time_budget_seconds: float,
    key: str,
    owner: str,
    chain: _Range,
) -> dict[str, Any]:
    client = BibliothecaClient.for_collection(collection)
    started = time.monotonic()
    deadline = started + time_budget_seconds
    totals = {"pages": 0, "records": 0, "skipped": 0, "new_pools": 0, "applies_queued": 0}
    totals["items_requests"] = 0
    started_at = position.current_day.isoformat()
    _report(chain, position.current_day, get_timestamp(collection).progress, hop_pages=0)
    # The hop extended (or took) the lease just now; a long hop extends it again, and
    # reports progress at most every PROGRESS_EVERY_SECONDS and after its last page,
    # rather than paying two more writes per page.
    extended_at = reported_at = started
    page_seconds = 0.0
    chain_totals: dict[str, Any] = {}
    page_writer = _page_writer(collection, totals)  # forks: before the hop's threads
    with page_writer as writer, _MarcAhead(collection, until=chain.until) as ahead:
        while not is_up_to_date(position.current_day, chain.until):
            # A group of pages is written together: one checkpoint (the last page's) per
            # COMMIT_EVERY_PAGES pages or COMMIT_EVERY_SECONDS, whichever comes first.
            # This thread parses the pages; the MARC thread fetches the next one
            # meanwhile, and the writer looks their items up and writes them.
            group_started = time.monotonic()
            pages: list[ReadPage] = []
            for _ in range(COMMIT_EVERY_PAGES):
                page_started = time.monotonic()
                records = ahead.take_page(position, client)
                # The next position depends only on this page's size: fetch the next
                # page while this one is read and handed over, if the budget leaves
                # time to import it.
                if page_started + 2 * page_seconds < deadline:
                    ahead.start_page(
                        next_position(
                            position,
                            records_on_page=len(records),
                            day_end=window_end(position.current_day, chain.until),
                        )
                    )
                page = read_page(
                    collection,
                    client,
                    position,
                    until=chain.until,
                    now=timezone.now(),
                    records=records,
                )
                pages.append(page)
                position = page.next
                now = time.monotonic()
                page_seconds = now - page_started
                if (
                    now >= deadline
                    or now - group_started >= COMMIT_EVERY_SECONDS
                    or is_up_to_date(position.current_day, chain.until)
                ):
                    break
            # Raises an earlier group's error (page order) before this one is written.
            chain_totals = writer.submit(pages) or chain_totals
            now = time.monotonic()
            last_group = now >= deadline or is_up_to_date(position.current_day, chain.until)
            if last_group:
                chain_totals = writer.finish() or chain_totals
            if now - extended_at >= EXTEND_EVERY_SECONDS:
                if not locks.extend_lease(
                    key=key, owner=owner, lease_seconds=bibliotheca_settings.LOCK_LEASE_SECONDS
                ) and not locks.acquire_lease(
                    key=key, owner=owner, lease_seconds=bibliotheca_settings.LOCK_LEASE_SECONDS
                ):
                    # Another chain took the lock mid-hop: stop before writing more pages.
                    writer.abandon()
                    raise JobSkipped(f"lock {key} was taken over mid-hop; this chain stops")
                extended_at = now
            if chain_totals and (last_group or now - reported_at >= PROGRESS_EVERY_SECONDS):
                # The counts and day of the last group written.
                day = datetime.fromisoformat(chain_totals["current_day"])
                _report(chain, day, chain_totals, hop_pages=totals["pages"])
                reported_at = now
            if now >= deadline:
                break
    return {
        **totals,
        # Where the pages were written: "process" (a forked child) or "threads".
        "writer": "process" if isinstance(page_writer, ForkedPageWriter) else "threads",
        "from": started_at,
        "position": position,
        "to": position.current_day.isoformat(),
        "offset": position.offset,
    }


def _page_writer(
    collection: Collection, totals: dict[str, int]
) -> "_PageWriter | ForkedPageWriter":
    """The hop's writer: in a forked child (its own GIL) unless the hop runs inside a
    transaction (a test's: another process would not see its rows) or fork is missing."""
    if (
        bibliotheca_settings.WRITER_PROCESS
        and hasattr(os, "fork")
        and not connection.in_atomic_block
    ):
        return ForkedPageWriter(lambda child_totals: _PageWriter(collection, child_totals), totals)
    return _PageWriter(collection, totals)


class _MarcAhead:
    """A thread that fetches the hop's next MARC page while the hop's thread parses and
    hands over the current one. It only waits on the socket: parsing stays in the
    hop's thread. Its error is raised when the hop takes the page, in page order. It
    has its own client (session)."""

    def __init__(self, collection: Collection, *, until: datetime) -> None:
        self._until = until
        self._client = BibliothecaClient.for_collection(collection)
        self._marc = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bibliotheca-marc")
        self._pending: tuple[Position, Future] | None = None

    def __enter__(self) -> "_MarcAhead":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pending is not None:
            self._pending[1].cancel()  # a fetch in flight finishes; its page is dropped
        self._marc.shutdown(wait=True)

    def start_page(self, position: Position) -> None:
        if not is_up_to_date(position.current_day, self._until):
            future = self._marc.submit(fetch_page, self._client, position, until=self._until)
            self._pending = (position, future)

    def take_page(self, position: Position, client: BibliothecaClient) -> list:
        """The records at `position`: fetched ahead or now, parsed in this thread."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == position:
            return client.parse_marc(pending[1].result())
        if pending is not None:
            pending[1].cancel()
        return client.parse_marc(fetch_page(client, position, until=self._until))


class _PageWriter:
    """Threads, each with its own connection, that write the hop's groups in order.

    ITEMS_THREADS threads look the groups' due items up (look_up_items: which ids are
    due and their stored hashes, one items request, parsed, needs-apply decided), one
    writes the groups in page order (finish_group: one statement, pools, staged
    applies, stamps and checkpoint): the items of the next groups are requested while
    one is written, and the hop's thread reads the next page meanwhile. The applies of
    consecutive groups are staged for one queued apply run, handed to the apply
    cluster once it holds APPLY_RUN_ITEMS items or is APPLY_RUN_SECONDS old, and when
    the hop ends (even on an error: its items are committed). A run not handed over
    (the process died) is queued in history: jobs.reap_lost_runs hands it over. A
    group's statement waits for its items answer (a failed or unreadable one writes
    nothing of the group); submit() takes the groups written, raising the first error
    in page order: no checkpoint is written after a failed group, so it stays at the
    last committed page. Leaving waits for the groups in flight (each commits whole)
    and raises their first error; the connections are closed when the hop is done. A
    hop called inside a transaction (a test's) writes in its own thread: another
    connection would not see the transaction's rows, and its writes would escape it.
    """

    def __init__(self, collection: Collection, totals: dict[str, int]) -> None:
        self._collection = collection
        self._totals = totals
        self._local = threading.local()
        inline = connection.in_atomic_block
        self._items = (
            _InThread()
            if inline
            else ThreadPoolExecutor(
                max_workers=ITEMS_THREADS, thread_name_prefix="bibliotheca-items"
            )
        )
        self._commits = (
            _InThread()
            if inline
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="bibliotheca-commit")
        )
        #: Groups handed over and not collected yet, oldest first.
        self._pending: deque[Future] = deque()
        #: A group failed: the later ones write nothing.
        self._failed = False
        #: The queued apply run the next groups' items are staged for, since when, and
        #: how many it holds.
        self._open_run: tuple[ApplyRun, float, int] | None = None

    def __enter__(self) -> "_PageWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        pending, self._pending = list(self._pending), deque()
        errors = [future.exception() for future in pending]  # waits: a group commits whole
        try:
            self._commits.submit(self._hand_over).result()
        except Exception:
            logger.exception("could not hand the last apply run to its cluster")
        for executor, threads in ((self._items, ITEMS_THREADS), (self._commits, 1)):
            if not isinstance(executor, _InThread):
                _close_connections(executor, threads)
            executor.shutdown(wait=True)
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            raise error

    def submit(self, pages: list[ReadPage]) -> dict[str, Any] | None:
        """Hand a group over: its items are looked up at once (their own thread), and it
        is written after the groups before it. Returns the chain's counts after the last
        group committed meanwhile (None: none), raising an earlier group's error; waits
        while more than GROUPS_IN_FLIGHT groups are not written yet."""
        looked_up = self._items.submit(self._look_up, pages)
        self._pending.append(
            self._commits.submit(
                contextvars.copy_context().run,  # the current run: the apply job's parent
                self._finish_group,
                looked_up,
            )
        )
        return self._collect(keep=GROUPS_IN_FLIGHT)

    def finish(self) -> dict[str, Any] | None:
        """Every group handed over committed; the chain's counts after the last one."""
        committed = self._collect(keep=0)
        self._commits.submit(self._hand_over).result()
        return committed

    def abandon(self) -> None:
        """Groups handed over and not written yet are not written (the chain lost its
        lock: another chain writes the checkpoint now)."""
        self._failed = True

    def _collect(self, *, keep: int) -> dict[str, Any] | None:
        """Take the groups written, oldest first, until at most `keep` are in flight;
        the first error (page order) is raised."""
        committed = None
        while self._pending and (self._pending[0].done() or len(self._pending) > keep):
            committed = self._pending.popleft().result() or committed
        return committed

    def _look_up(self, pages: list[ReadPage]) -> PageGroup:
        client = getattr(self._local, "client", None)
        if client is None:  # one HTTP session per thread
            client = self._local.client = BibliothecaClient.for_collection(self._collection)
        group = PageGroup()
        for page in pages:
            group.add(look_up_items(self._collection, client, page))
        return group

    def _finish_group(self, looked_up: Future) -> dict[str, Any] | None:
        """Commit the group (commits thread); hand its apply run over when full or old.
        After a failed group nothing more is written (None)."""
        if self._failed:
            return None
        try:
            group: PageGroup = looked_up.result()  # raises the items request's error
            return self._write(group)
        except BaseException:
            self._failed = True
            raise

    def _write(self, group: PageGroup) -> dict[str, Any]:
        open_run = self._open_run[0] if self._open_run else None
        written = finish_group(self._collection, group, open_run=open_run)
        for name in self._totals:
            self._totals[name] += (
                group.pages
                if name == "pages"
                else written.new_pools
                if name == "new_pools"
                else group.counts.get(name, 0)
            )
        now = time.monotonic()
        run = written.run
        if run is not None:
            if run != open_run:  # a new run (the open one, if any, left `queued`)
                self._open_run = (run, now, 0)
            run, opened, items = self._open_run
            self._open_run = (run, opened, items + len(group.changed))
        if self._open_run is not None:  # also checked after pages with nothing to apply
            _, opened, items = self._open_run
            if items >= APPLY_RUN_ITEMS or now - opened >= APPLY_RUN_SECONDS:
                self._hand_over()
        return written.progress

    def _hand_over(self) -> None:
        """The open apply run to its cluster (commits thread), if there is one."""
        if self._open_run is not None:
            run = self._open_run[0]
            self._open_run = None
            queue_inserted_run(run.run_id, APPLY_JOB)


def _close_connections(executor: ThreadPoolExecutor, threads: int) -> None:
    """Close the database connections of each of the executor's `threads` threads: one
    task each, held at a barrier until every thread has one."""
    barrier = threading.Barrier(threads)

    def close() -> None:
        barrier.wait(timeout=30)
        connections.close_all()

    for _ in range(threads):
        executor.submit(close)


class _InThread:
    """An executor that runs each call at once in the calling thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        """fn(*args) now; its result or error in the returned future."""
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _is_retry() -> bool:
    run = current_run()
    return run is not None and run.trigger == JobRun.Trigger.RETRY


def _resume_after_retry(collection: Collection, position: Position) -> tuple[datetime, int]:
    """A retry re-runs the failed hop's kwargs; skip the pages that hop already committed.

    The checkpoint counts only if this chain moved it (its page counter, reset when the
    chain started, is above 0): a force reimport's retry must not jump to the old one.
    """
    timestamp = get_timestamp(collection)
    ours = int(timestamp.progress.get("pages", 0)) > 0
    if ours and timestamp.finish is not None and timestamp.finish > position.current_day:
        return timestamp.finish, 1
    return position.current_day, position.offset


def _will_be_retried(exc: BaseException) -> bool:
    """The runner's own decision, so the lease is kept exactly when a retry follows."""
    run = current_run()
    if run is None or run.job != CHAIN_JOB:
        return False
    return get_job(CHAIN_JOB).retry.will_retry(attempt=run.attempt, error=exc)
