"""Import one page of purchase records: pools, batched metadata, needs-apply, checkpoint.

A page is read (fetched and parsed, no database: read_page), its due items looked up
in one batched request and compared with the stored Edition hashes (look_up_items),
then written in one statement (finish_group): its pools found or created, the changed
items staged for an apply run, the looked-up pools stamped and the checkpoint moved,
together or not at all. A hop killed between pages resumes from the last committed
page without losing or duplicating pools, and a stamped pool always has its applies
staged for a run.
"""

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pymarc

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.models import Collection, Edition, Identifier, LicensePool, Timestamp
from bibliotheca.services.apply import edition_row
from bibliotheca.services.client import BibliothecaClient, RawResponse
from bibliotheca.services.items import data_hash
from bibliotheca.services.marc import bibliotheca_id
from bibliotheca.services.page_statement import PROGRESS_KEYS, write_group
from bibliotheca.services.windows import (
    Position,
    checkpoint_after_page,
    next_position,
    window_end,
)
from jobs.context import current_run
from jobs.db import fetch_prepared
from jobs.runner import queued_run_insert

logger = logging.getLogger("bibliotheca")

APPLY_JOB = "bibliotheca.apply_bibliographic"


def get_timestamp(collection: Collection) -> Timestamp:
    timestamp, _ = Timestamp.objects.get_or_create(
        service=PURCHASE_RECORD_SERVICE,
        collection=collection,
        defaults={"service_type": Timestamp.ServiceType.TASK},
    )
    return timestamp


def get_start(collection: Collection) -> datetime:
    """Timestamp.finish, or 2014-01-01 for a collection never imported."""
    finish = (
        Timestamp.objects.filter(service=PURCHASE_RECORD_SERVICE, collection=collection)
        .values_list("finish", flat=True)
        .first()
    )
    return finish or DEFAULT_START


def start_chain(collection: Collection, *, now: datetime) -> None:
    """A new chain: reset the progress counters shown in the admin."""
    Timestamp.objects.filter(pk=get_timestamp(collection).pk).update(
        start=now, counter=0, exception="", progress={k: 0 for k in PROGRESS_KEYS}
    )


def fetch_page(client: BibliothecaClient, position: Position, *, until: datetime) -> RawResponse:
    """The MARC page at `position`, not parsed yet (I/O only: a hop fetches it ahead)."""
    return client.get_marc(
        start=position.current_day,
        end=window_end(position.current_day, until),
        offset=position.offset,
    )


@dataclass(frozen=True, kw_only=True)
class ReadPage:
    """A page fetched and parsed (read_page), with its due items looked up once
    (look_up_items), not written yet (finish_group)."""

    position: Position
    records: int
    skipped: int
    #: The page's ids with exactly one 001, first occurrence order.
    item_ids: list[str]
    checkpoint: datetime
    next: Position
    now: datetime
    #: Items requests made for the page (0 or 1).
    items_requests: int = 0
    #: Ids whose items were answered: their pools are stamped `metadata_checked_at`.
    looked: list[str] = field(default_factory=list)
    #: Edition rows (apply.edition_row, keyed by `value`) of the answered items whose
    #: hash differs from the stored Edition's: staged for the apply run.
    changed: list[dict[str, Any]] = field(default_factory=list)


def read_page(
    collection: Collection,
    client: BibliothecaClient,
    position: Position,
    *,
    until: datetime,
    now: datetime,
    records: list[pymarc.Record] | None = None,
) -> ReadPage:
    """The page at `position`, parsed: no database.

    `until` is the chain's end (when it started): windows never reach past it.
    `records`: the page, when the caller fetched and parsed it already.
    """
    day_end = window_end(position.current_day, until)
    if records is None:
        records = client.parse_marc(fetch_page(client, position, until=until))
    item_ids: list[str] = []
    skipped = 0
    for record in records:
        item_id = bibliotheca_id(record)
        if item_id is None:
            skipped += 1
            logger.error(
                "Bibliotheca collection %r, window %s..%s offset %s: record without exactly "
                "one 001 field (%s found); skipped",
                collection.name,
                position.current_day.isoformat(),
                day_end.isoformat(),
                position.offset,
                len(record.get_fields("001")),
            )
        else:
            item_ids.append(item_id)
    return ReadPage(
        position=position,
        records=len(records),
        skipped=skipped,
        item_ids=list(dict.fromkeys(item_ids)),
        checkpoint=checkpoint_after_page(position, records_on_page=len(records), day_end=day_end),
        next=next_position(position, records_on_page=len(records), day_end=day_end),
        now=now,
    )


def look_up_items(collection: Collection, client: BibliothecaClient, page: ReadPage) -> ReadPage:
    """The page with its due ids' items (one batched request, parsed) and needs-apply
    decided: the answered items whose hash differs from the stored Edition's.

    Due: no pool yet, or metadata unchecked or older than
    BIBLIOTHECA_METADATA_REFRESH_DAYS (committed data). A failed request or an
    unreadable answer raises here, before anything of the page is written. A hop's
    writer runs it for a page while the pages before it are written: an id also on the
    page before may be looked up twice (its second apply finds the hash stored).
    """
    if not page.item_ids:
        return page
    due = due_items(collection, page.item_ids, now=page.now)
    if not due:
        return page
    looked, changed = [], []
    for item_id, data in client.fetch_items(sorted(due)).items():
        if item_id not in due:
            continue
        looked.append(item_id)
        digest = data_hash(data)
        if due[item_id] != digest:
            changed.append(edition_row(digest, data, value=item_id))
    return replace(page, items_requests=1, looked=looked, changed=changed)


@dataclass
class PageGroup:
    """Pages written together by finish_group (one page, or a group of them)."""

    pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    item_ids: dict[str, None] = field(default_factory=dict)
    looked: dict[str, None] = field(default_factory=dict)
    #: Edition rows to stage, the last one per id.
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint: datetime | None = None
    next_at: Position | None = None
    now: datetime | None = None

    def add(self, page: ReadPage) -> None:
        self.pages += 1
        for key in ("records", "skipped", "items_requests"):
            self.counts[key] = self.counts.get(key, 0) + getattr(page, key)
        self.item_ids.update(dict.fromkeys(page.item_ids))
        self.looked.update(dict.fromkeys(page.looked))
        self.changed.update((row["value"], row) for row in page.changed)
        self.counts["applies_queued"] = len(self.changed)
        self.checkpoint, self.next_at, self.now = page.checkpoint, page.next, page.now


@dataclass(frozen=True)
class ApplyRun:
    """A queued apply run and the batch its items are staged under (PendingEdition)."""

    run_id: int
    batch: str


@dataclass(frozen=True)
class GroupWritten:
    """What finish_group committed."""

    #: The chain's counts after the group (Timestamp.progress).
    progress: dict[str, Any]
    #: The run the group's applies are staged for (None: nothing to apply).
    run: ApplyRun | None
    new_pools: int


#: A group's statement is tried again (with a new apply run if the open one left
#: `queued`) when it wrote nothing; it gives up after this many attempts.
WRITE_ATTEMPTS = 3


def finish_group(
    collection: Collection, group: PageGroup, *, open_run: ApplyRun | None = None
) -> GroupWritten:
    """Write the group in one statement, atomic on its own (page_statement): pools
    found or created, changed items staged, looked-up pools stamped, checkpoint and
    chain counts moved. A stamped pool always has its applies staged.

    The changed items are staged for `open_run` (a queued apply run not handed to its
    cluster yet) when it is still queued, else for a new queued run. The statement
    writes nothing when the open run has left `queued`, or when an identifier another
    transaction created meanwhile is not in its snapshot: it is then run again (a new
    statement sees that identifier). The caller hands the run to its cluster
    (jobs.runner.queue_inserted_run) when it is full or old enough.
    """
    if not group.pages:
        return GroupWritten({}, None, 0)
    changed = list(group.changed.values())
    run = open_run if changed else None
    new_pools = 0
    for _ in range(WRITE_ATTEMPTS):
        new_run = None
        if changed and run is None:
            batch = str(uuid.uuid4())
            insert = queued_run_insert(
                APPLY_JOB,
                kwargs={"collection_id": collection.pk, "batch": batch},
                trigger="chain",
                parent=current_run(),
            )
            new_run = (insert, batch)
        written = write_group(
            collection,
            group,
            changed=changed,
            open_run=run,
            new_run=new_run,
            new_pools_before=new_pools,
        )
        new_pools += written.new_pools
        if written.ok:
            return GroupWritten(
                written.progress,
                ApplyRun(written.run_id, written.batch) if changed else None,
                new_pools,
            )
        # A new run inserted by this attempt stays queued (nobody has it yet): the next
        # attempt stages for it. An open run that left `queued` gets no more items.
        run = ApplyRun(written.run_id, written.batch) if written.run_queued else None
    raise RuntimeError(
        f"could not write the pages of collection {collection.pk} after {WRITE_ATTEMPTS} "
        "attempts (identifiers created meanwhile, or apply runs taken)"
    )


# Read-only: which of a page's ids are due, and the stored Edition hash of each. Each id
# is probed through the unique indexes (LATERAL ... LIMIT 1): without statistics (a
# first import) the planner would otherwise filter every identifier or pool per page.
_DUE = """
SELECT input.value, f.fresh IS NULL, e.data_hash
FROM (SELECT DISTINCT unnest(%(values)s::varchar[]) AS value) input
LEFT JOIN LATERAL (
    SELECT id FROM {identifier} WHERE type = %(type)s AND value = input.value LIMIT 1
) i ON true
LEFT JOIN LATERAL (
    SELECT 1 AS fresh FROM {pool}
    WHERE collection_id = %(collection)s AND identifier_id = i.id
      AND metadata_checked_at >= %(cutoff)s
    LIMIT 1
) f ON true
LEFT JOIN LATERAL (
    SELECT data_hash FROM {edition} WHERE identifier_id = i.id LIMIT 1
) e ON true
"""


def due_items(
    collection: Collection, item_ids: list[str], *, now: datetime
) -> dict[str, str | None]:
    """{id: stored Edition hash or None} of the ids without a pool, or whose pool's
    metadata is unchecked or older than BIBLIOTHECA_METADATA_REFRESH_DAYS."""
    sql = _DUE.format(
        identifier=Identifier._meta.db_table,
        pool=LicensePool._meta.db_table,
        edition=Edition._meta.db_table,
    )
    rows = fetch_prepared(
        sql,
        {
            "values": item_ids,
            "collection": collection.pk,
            "type": str(Identifier.Type.BIBLIOTHECA_ID),
            "cutoff": now - timedelta(days=bibliotheca_settings.METADATA_REFRESH_DAYS),
        },
    )
    return {value: edition_hash for value, due, edition_hash in rows if due}
