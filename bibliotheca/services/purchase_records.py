"""Import one page of purchase records: pools, batched metadata, needs-apply, checkpoint.

A page is read (fetched and parsed, no database: read_page), its due items looked up
in one batched request (look_up_items), then written in two statements (write_page,
finish_group): its pools (found or created), then its staged applies, its pools'
metadata stamp and its checkpoint, together. A hop killed between pages resumes from
the last committed page without losing or duplicating pools, and a stamped pool
always has its applies staged for a run.
"""

import json
import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pymarc
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.models import Collection, Identifier, LicensePool, Timestamp
from bibliotheca.services.apply import edition_row, staged_rows_sql
from bibliotheca.services.client import BibliothecaClient, RawResponse
from bibliotheca.services.items import data_hash
from bibliotheca.services.marc import bibliotheca_id
from bibliotheca.services.pools import PoolRow, find_or_create_pools
from bibliotheca.services.windows import (
    Position,
    checkpoint_after_page,
    next_position,
    window_end,
)
from jobs.context import current_run
from jobs.models import JobRun
from jobs.runner import queued_run_insert

logger = logging.getLogger("bibliotheca")

APPLY_JOB = "bibliotheca.apply_bibliographic"
PROGRESS_KEYS = ("pages", "records", "skipped", "new_pools", "items_requests", "applies_queued")


@dataclass(frozen=True, kw_only=True)
class PageResult:
    records: int
    #: Records without exactly one 001 field.
    skipped: int
    new_pools: int
    #: Items requests made for this page (0 or 1).
    items_requests: int
    #: Items whose metadata hash changed and were sent to the apply cluster.
    applies_queued: int
    next: Position
    checkpoint: datetime
    #: The chain's counts so far, this page included (Timestamp.progress after it).
    chain_totals: dict[str, Any]


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


def page_item_ids(records: list[pymarc.Record]) -> list[str]:
    """The page's ids with exactly one 001, first occurrence order."""
    return list(dict.fromkeys(i for i in map(bibliotheca_id, records) if i is not None))


@dataclass(frozen=True, kw_only=True)
class ReadPage:
    """A page fetched and parsed (read_page), with its due items' answer once looked up
    (look_up_items), not written yet (write_page)."""

    position: Position
    records: int
    skipped: int
    #: The page's ids with exactly one 001, first occurrence order.
    item_ids: list[str]
    checkpoint: datetime
    next: Position
    now: datetime
    #: The ids whose items were requested ahead (None: no request ahead), and the answer.
    asked: frozenset[str] | None = None
    looked_up: dict[str, dict[str, str]] = field(default_factory=dict)


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
    """The page with the items answer of its ids due now (committed data): one batched
    request, parsed. A failed request or an unreadable answer raises here, before
    anything of the page is written.

    A hop's writer runs it for a page while the page before it is written; write_page
    then checks these ids against the ones it finds due itself.
    """
    if not page.item_ids:
        return page
    due = due_item_ids(collection, page.item_ids, now=timezone.now())
    looked_up = client.fetch_items(due) if due else {}
    return replace(page, asked=frozenset(due), looked_up=looked_up)


def write_page(
    collection: Collection, client: BibliothecaClient, page: ReadPage, group: "PageGroup"
) -> PageResult:
    """Write a read page into `group`: its pools are found or created, its applies, pool
    stamps, counts and checkpoint are added to the group, which the caller writes with
    finish_group (one statement; a hop commits every page, or a group of pages in one
    transaction).

    Outside a transaction the pools statement commits on its own, before the group's
    statement: a failure in between leaves pools with unstamped metadata (due again when
    the page is read again, from the unchanged checkpoint), never a stamp without its
    apply job. Due ids that were not requested ahead are requested now.
    """
    checkpoint, next_at, now = page.checkpoint, page.next, page.now
    if not page.item_ids:  # nothing to write but the checkpoint
        counts = _PageCounts(records=page.records, skipped=page.skipped)
        group.add(counts, [], [], checkpoint=checkpoint, next_at=next_at, now=now)
        return PageResult(**vars(counts), next=next_at, checkpoint=checkpoint, chain_totals={})

    asked = page.asked
    pools = find_or_create_pools(collection, page.item_ids, now=now)
    cutoff = now - timedelta(days=bibliotheca_settings.METADATA_REFRESH_DAYS)
    due = sorted(
        item_id
        for item_id, pool in pools.items()
        if pool.is_new or pool.metadata_checked_at is None or pool.metadata_checked_at < cutoff
    )
    if asked is not None and asked.issuperset(due):  # requested meanwhile: no new one
        items = {i: page.looked_up[i] for i in due if i in page.looked_up}
        items_requests = 1 if asked else 0
    else:
        items = client.fetch_items(due) if due else {}
        items_requests = (1 if due else 0) + (1 if asked else 0)
    applies = _changed_items(pools, items)
    checked_pool_ids = [pools[i].pool_id for i in items if i in pools]
    counts = _PageCounts(
        records=page.records,
        skipped=page.skipped,
        new_pools=sum(1 for pool in pools.values() if pool.is_new),
        items_requests=items_requests,
        applies_queued=len(applies),
    )
    group.add(counts, applies, checked_pool_ids, checkpoint=checkpoint, next_at=next_at, now=now)
    return PageResult(**vars(counts), next=next_at, checkpoint=checkpoint, chain_totals={})


def import_page(
    collection: Collection,
    client: BibliothecaClient,
    position: Position,
    *,
    until: datetime,
    now: datetime,
    group: "PageGroup",
) -> PageResult:
    """read_page, look_up_items, then write_page, in this thread."""
    page = read_page(collection, client, position, until=until, now=now)
    return write_page(collection, client, look_up_items(collection, client, page), group)


@dataclass
class PageGroup:
    """Pages written together by finish_group (one page, or a group in one transaction)."""

    pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    applies: list[dict[str, Any]] = field(default_factory=list)
    checked_pool_ids: list[int] = field(default_factory=list)
    checkpoint: datetime | None = None
    next_at: Position | None = None
    now: datetime | None = None

    def add(
        self,
        page: "_PageCounts",
        applies: list[dict[str, Any]],
        checked_pool_ids: list[int],
        *,
        checkpoint: datetime,
        next_at: Position,
        now: datetime,
    ) -> None:
        self.pages += 1
        for key, value in vars(page).items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.applies.extend(applies)
        self.checked_pool_ids.extend(checked_pool_ids)
        self.checkpoint, self.next_at, self.now = checkpoint, next_at, now


@dataclass(frozen=True)
class ApplyRun:
    """A queued apply run and the batch its items are staged under (PendingEdition)."""

    run_id: int
    batch: str


def finish_group(
    collection: Collection, group: PageGroup, *, open_run: ApplyRun | None = None
) -> tuple[dict[str, Any], ApplyRun | None]:
    """Stage the group's applies (the changed items, the last one per identifier), stamp
    its pools and move the checkpoint: one statement, atomic on its own, so the page's
    checkpoint, stamps and applies commit together without a transaction.

    The items are staged for `open_run` (a queued apply run not handed to its cluster
    yet) when it is still queued, else for a new queued run. Returns the chain's counts
    and the run holding the items (None: no items); the caller hands the run to its
    cluster (jobs.runner.queue_inserted_run) when it is full or old enough.
    """
    if not group.pages:
        return {}, None
    unique = list({item["identifier_id"]: item for item in group.applies}.values())
    counts = _PageCounts(**{**group.counts, "applies_queued": len(unique)})
    checkpoint = partial(
        _checkpoint,
        collection,
        counts,
        checkpoint=group.checkpoint,
        next_at=group.next_at,
        checked_pool_ids=group.checked_pool_ids,
        now=group.now,
        pages=group.pages,
    )
    if not unique:
        return checkpoint()
    if open_run is not None:
        written = checkpoint(stage=(open_run, unique))
        if written is not None:
            return written
        # The run left `queued` meanwhile (handed over by the reaper): nothing was
        # written; the items go to a new run.
    batch = str(uuid.uuid4())
    apply_run = queued_run_insert(
        APPLY_JOB,
        kwargs={"collection_id": collection.pk, "batch": batch},
        trigger="chain",
        parent=current_run(),
    )
    return checkpoint(apply_run=(apply_run, batch, unique))


# Read-only twin of find_or_create_pools' "due" answer, for a page fetched ahead. Each
# id is probed through the unique indexes (LATERAL ... LIMIT 1), for the same reason.
_DUE = """
SELECT input.value FROM (SELECT DISTINCT unnest(%(values)s::varchar[]) AS value) input
LEFT JOIN LATERAL (
    SELECT 1 AS fresh FROM {identifier} i
    JOIN {pool} p ON p.collection_id = %(collection)s AND p.identifier_id = i.id
    WHERE i.type = %(type)s AND i.value = input.value AND p.metadata_checked_at >= %(cutoff)s
    LIMIT 1
) f ON true
WHERE f.fresh IS NULL
"""


def due_item_ids(collection: Collection, item_ids: list[str], *, now: datetime) -> list[str]:
    """Sorted ids without a pool, or whose pool's metadata is unchecked or older than
    BIBLIOTHECA_METADATA_REFRESH_DAYS (committed data only)."""
    sql = _DUE.format(identifier=Identifier._meta.db_table, pool=LicensePool._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "values": item_ids,
                "collection": collection.pk,
                "type": Identifier.Type.BIBLIOTHECA_ID,
                "cutoff": now - timedelta(days=bibliotheca_settings.METADATA_REFRESH_DAYS),
            },
        )
        return sorted(value for (value,) in cursor)


def _changed_items(
    pools: dict[str, PoolRow], items: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """Needs-apply: items whose hash differs from the Edition's stored one (or no Edition),
    as the Edition rows to stage for the apply run (apply.edition_row)."""
    changed = []
    for item_id, data in items.items():
        pool = pools.get(item_id)
        if pool is None:
            continue
        digest = data_hash(data)
        if pool.edition_hash != digest:
            changed.append(edition_row(pool.identifier_id, digest, data))
    return changed


@dataclass(frozen=True, kw_only=True)
class _PageCounts:
    records: int
    skipped: int
    new_pools: int = 0
    items_requests: int = 0
    applies_queued: int = 0


_COUNTED = ("pages", "records", "skipped", "new_pools", "items_requests", "applies_queued")


def _count(key: str) -> str:
    return f"COALESCE((t.progress->>'{key}')::bigint, 0) + %({key})s"


# The page's applies, its pools' metadata stamp and the checkpoint in one statement
# (one round trip, atomic without a transaction). The applies are Edition rows staged
# for a new queued apply run ({apply_run}), or for a queued one ({open_run}, locked
# FOR SHARE so that a worker cannot claim it, and take its batch, before they commit):
# then the stamps and the checkpoint are written only if the run was still queued,
# and no row comes back otherwise. The chain's lock makes the hop the only
# writer of its Timestamp; the counters still add up in SQL.
_CHECKPOINT = """
WITH {apply_run}checked AS (
    UPDATE {pool} SET metadata_checked_at = %(now)s
    WHERE id = ANY(%(checked)s::bigint[]){still_queued}
)
UPDATE {timestamp} t SET
    finish = %(finish)s,
    counter = t.counter + %(records)s,
    progress = jsonb_build_object({progress}, 'current_day', %(current_day)s::text),
    achievements = format(
        'MARC records fetched: %%s (skipped %%s), pages %%s, new pools %%s, '
        'applies queued %%s',
        {achievements}
    )
WHERE t.service = %(service)s AND t.collection_id = %(collection)s{still_queued}
RETURNING t.progress, {run_id}
""".format(
    apply_run="{apply_run}",
    still_queued="{still_queued}",
    pool="{pool}",
    timestamp="{timestamp}",
    run_id="{run_id}",
    progress=", ".join(f"'{key}', {_count(key)}" for key in _COUNTED),
    achievements=", ".join(
        _count(key) for key in ("records", "skipped", "pages", "new_pools", "applies_queued")
    ),
)

_OPEN_RUN = """open_run AS (
    SELECT id FROM {run} WHERE id = %(open_run)s AND status = 'queued' FOR SHARE
),
staged AS ({staged} WHERE EXISTS (SELECT 1 FROM open_run)),
"""


def _checkpoint(
    collection: Collection,
    page: _PageCounts,
    *,
    checkpoint: datetime,
    next_at: Position,
    checked_pool_ids: list[int] | None = None,
    now: datetime | None = None,
    pages: int = 1,
    apply_run: tuple[tuple[str, list[Any]], str, list[dict[str, Any]]] | None = None,
    stage: tuple[ApplyRun, list[dict[str, Any]]] | None = None,
) -> tuple[dict[str, Any], ApplyRun | None] | None:
    """Move Timestamp.finish, add the page(s) to the chain's counts, stamp the pools whose
    metadata was looked up and stage the applies (for a new run from
    jobs.runner.queued_run_insert, or for a queued run), in one statement. Returns the
    chain's counts and the apply run; None when the run to stage for was no longer
    queued (nothing written)."""
    params: dict[str, Any] = {
        **vars(page),
        "pages": pages,
        "now": now,
        "checked": checked_pool_ids or [],
        "finish": checkpoint,
        "current_day": next_at.current_day.isoformat(),
        "service": PURCHASE_RECORD_SERVICE,
        "collection": collection.pk,
    }
    apply_sql, run_id_sql, still_queued = "", "NULL::bigint", ""
    batch: str | None = None
    staged = staged_rows_sql("staged_rows", "batch", "now")
    if apply_run is not None:
        (insert_sql, insert_params), batch, rows = apply_run
        parts = insert_sql.split("%s")
        if len(parts) != len(insert_params) + 1:
            raise RuntimeError("unexpected placeholders in the run insert")
        apply_sql = parts[0]
        for number, (value, rest) in enumerate(zip(insert_params, parts[1:], strict=True)):
            params[f"run_{number}"] = value
            apply_sql += f"%(run_{number})s" + rest
        apply_sql = f"apply_run AS ({apply_sql}),\nstaged AS ({staged}),\n"
        run_id_sql = "(SELECT id FROM apply_run)"
        params.update(batch=batch, staged_rows=Jsonb(rows))
    elif stage is not None:
        open_run, rows = stage
        batch = open_run.batch
        params.update(open_run=open_run.run_id, batch=batch, staged_rows=Jsonb(rows))
        apply_sql = _OPEN_RUN.format(run=JobRun._meta.db_table, staged=staged)
        run_id_sql = "(SELECT id FROM open_run)"
        still_queued = " AND EXISTS (SELECT 1 FROM open_run)"
    sql = _CHECKPOINT.format(
        apply_run=apply_sql,
        still_queued=still_queued,
        pool=LicensePool._meta.db_table,
        timestamp=Timestamp._meta.db_table,
        run_id=run_id_sql,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None and stage is not None:
        return None
    if row is None:  # a hop creates the row before its first page (get_timestamp)
        raise RuntimeError(f"no purchase-record Timestamp for collection {collection.pk}")
    progress = row[0]
    progress = json.loads(progress) if isinstance(progress, str | bytes) else progress
    run_id = row[1]
    return progress, (ApplyRun(run_id, batch) if run_id is not None and batch else None)
