"""Import one page of purchase records: pools, batched metadata, needs-apply, checkpoint.

One page is one transaction: its pools, its queued apply and its checkpoint commit
together, so a hop killed between pages resumes from the last committed page without
losing or duplicating pools.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pymarc
from django.db import connection, transaction

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.models import Collection, LicensePool, Timestamp
from bibliotheca.services.client import BibliothecaClient
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
from jobs.runner import enqueue_job

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


def fetch_page(
    client: BibliothecaClient, position: Position, *, until: datetime
) -> list[pymarc.Record]:
    """The MARC page at `position` (no database: a hop may fetch the next page ahead)."""
    return client.fetch_marc_page(
        start=position.current_day,
        end=window_end(position.current_day, until),
        offset=position.offset,
    )


def import_page(
    collection: Collection,
    client: BibliothecaClient,
    position: Position,
    *,
    until: datetime,
    now: datetime,
    records: list[pymarc.Record] | None = None,
) -> PageResult:
    """Fetch the page at `position`, import it, and move the checkpoint, in one transaction.

    `until` is the chain's end (when it started): windows never reach past it.
    `records`: the page, when the caller fetched it already (`fetch_page`).
    """
    day_end = window_end(position.current_day, until)
    if records is None:
        records = fetch_page(client, position, until=until)
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
    item_ids = list(dict.fromkeys(item_ids))
    checkpoint = checkpoint_after_page(position, records_on_page=len(records), day_end=day_end)
    next_at = next_position(position, records_on_page=len(records), day_end=day_end)

    if not item_ids:  # nothing to write but the checkpoint: one statement, no transaction
        page = _PageCounts(records=len(records), skipped=skipped)
        chain_totals = _checkpoint(collection, page, checkpoint=checkpoint, next_at=next_at)
        return PageResult(
            **vars(page), next=next_at, checkpoint=checkpoint, chain_totals=chain_totals
        )

    with transaction.atomic():
        pools = find_or_create_pools(collection, item_ids, now=now)
        cutoff = now - timedelta(days=bibliotheca_settings.METADATA_REFRESH_DAYS)
        due = sorted(
            item_id
            for item_id, pool in pools.items()
            if pool.is_new or pool.metadata_checked_at is None or pool.metadata_checked_at < cutoff
        )
        items = client.fetch_items(due) if due else {}
        applies = _changed_items(pools, items)
        if applies:
            enqueue_job(
                APPLY_JOB,
                kwargs={"collection_id": collection.pk, "items": applies},
                trigger="chain",
                parent=current_run(),
            )
        page = _PageCounts(
            records=len(records),
            skipped=skipped,
            new_pools=sum(1 for pool in pools.values() if pool.is_new),
            items_requests=1 if due else 0,
            applies_queued=len(applies),
        )
        chain_totals = _checkpoint(
            collection,
            page,
            checkpoint=checkpoint,
            next_at=next_at,
            checked_pool_ids=[pools[i].pool_id for i in items if i in pools],
            now=now,
        )
    return PageResult(**vars(page), next=next_at, checkpoint=checkpoint, chain_totals=chain_totals)


def _changed_items(
    pools: dict[str, PoolRow], items: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """Needs-apply: items whose hash differs from the Edition's stored one (or no Edition)."""
    changed = []
    for item_id, data in items.items():
        pool = pools.get(item_id)
        if pool is None:
            continue
        digest = data_hash(data)
        if pool.edition_hash != digest:
            changed.append({"identifier_id": pool.identifier_id, "data": data, "data_hash": digest})
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


# The pools' metadata stamp and the checkpoint in one round trip. The chain's lock makes
# the hop the only writer of its Timestamp; the counters still add up in SQL.
_CHECKPOINT = """
WITH checked AS (
    UPDATE {pool} SET metadata_checked_at = %(now)s WHERE id = ANY(%(checked)s::bigint[])
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
WHERE t.service = %(service)s AND t.collection_id = %(collection)s
RETURNING t.progress
""".format(
    pool="{pool}",
    timestamp="{timestamp}",
    progress=", ".join(f"'{key}', {_count(key)}" for key in _COUNTED),
    achievements=", ".join(
        _count(key) for key in ("records", "skipped", "pages", "new_pools", "applies_queued")
    ),
)


def _checkpoint(
    collection: Collection,
    page: _PageCounts,
    *,
    checkpoint: datetime,
    next_at: Position,
    checked_pool_ids: list[int] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move Timestamp.finish, add the page to the chain's counts, stamp the pools whose
    metadata was looked up; one statement. Returns the chain's counts."""
    sql = _CHECKPOINT.format(pool=LicensePool._meta.db_table, timestamp=Timestamp._meta.db_table)
    params = {
        **vars(page),
        "pages": 1,
        "now": now,
        "checked": checked_pool_ids or [],
        "finish": checkpoint,
        "current_day": next_at.current_day.isoformat(),
        "service": PURCHASE_RECORD_SERVICE,
        "collection": collection.pk,
    }
    for _ in range(2):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            progress = row[0]
            return json.loads(progress) if isinstance(progress, str | bytes) else progress
        get_timestamp(collection)  # a page outside a chain: create the row, then again
    raise RuntimeError(f"no purchase-record Timestamp for collection {collection.pk}")
