"""Import one page of purchase records: pools, batched metadata, needs-apply, checkpoint.

One page is one transaction: its pools, its queued apply and its checkpoint commit
together, so a hop killed between pages resumes from the last committed page without
losing or duplicating pools.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.models import Collection, Edition, LicensePool, Timestamp
from bibliotheca.services.client import BibliothecaClient
from bibliotheca.services.items import data_hash
from bibliotheca.services.marc import bibliotheca_id
from bibliotheca.services.pools import find_or_create_pools
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


def import_page(
    collection: Collection,
    client: BibliothecaClient,
    position: Position,
    *,
    until: datetime,
    now: datetime,
) -> PageResult:
    """Fetch the page at `position`, import it, and move the checkpoint, in one transaction.

    `until` is the chain's end (when it started): windows never reach past it.
    """
    day_end = window_end(position.current_day, until)
    records = client.fetch_marc_page(
        start=position.current_day, end=day_end, offset=position.offset
    )
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

    with transaction.atomic():
        pools, new_ids = find_or_create_pools(collection, item_ids, now=now)
        due = _due_pools(pools, now=now)
        items = client.fetch_items(sorted(due)) if due else {}
        applies = _changed_items(pools, items)
        if applies:
            enqueue_job(
                APPLY_JOB,
                kwargs={"collection_id": collection.pk, "items": applies},
                trigger="chain",
                parent=current_run(),
            )
        LicensePool.objects.filter(pk__in=[pools[i].pk for i in items if i in pools]).update(
            metadata_checked_at=now
        )
        page = _PageCounts(
            records=len(records),
            skipped=skipped,
            new_pools=len(new_ids),
            items_requests=1 if due else 0,
            applies_queued=len(applies),
        )
        checkpoint = checkpoint_after_page(position, records_on_page=len(records), day_end=day_end)
        next_at = next_position(position, records_on_page=len(records), day_end=day_end)
        chain_totals = _checkpoint(collection, page, checkpoint=checkpoint, next_at=next_at)
    return PageResult(**vars(page), next=next_at, checkpoint=checkpoint, chain_totals=chain_totals)


def _due_pools(pools: dict[str, LicensePool], *, now: datetime) -> set[str]:
    """Ids whose pool is new or whose metadata was last checked too long ago."""
    cutoff = now - timedelta(days=bibliotheca_settings.METADATA_REFRESH_DAYS)
    due = LicensePool.objects.filter(pk__in=[p.pk for p in pools.values()]).filter(
        Q(metadata_checked_at__isnull=True) | Q(metadata_checked_at__lt=cutoff)
    )
    return set(due.values_list("identifier__value", flat=True))


def _changed_items(
    pools: dict[str, LicensePool], items: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """Needs-apply: items whose hash differs from the Edition's stored one (or no Edition)."""
    identifier_ids = {
        item_id: pools[item_id].identifier_id for item_id in items if item_id in pools
    }
    stored = dict(
        Edition.objects.filter(identifier_id__in=identifier_ids.values()).values_list(
            "identifier_id", "data_hash"
        )
    )
    changed = []
    for item_id, identifier_id in identifier_ids.items():
        digest = data_hash(items[item_id])
        if stored.get(identifier_id) != digest:
            changed.append(
                {"identifier_id": identifier_id, "data": items[item_id], "data_hash": digest}
            )
    return changed


@dataclass(frozen=True, kw_only=True)
class _PageCounts:
    records: int
    skipped: int
    new_pools: int
    items_requests: int
    applies_queued: int


def _checkpoint(
    collection: Collection, page: _PageCounts, *, checkpoint: datetime, next_at: Position
) -> dict[str, Any]:
    """Move Timestamp.finish and add the page to the chain's counts; returns the counts."""
    timestamp = Timestamp.objects.select_for_update().get(pk=get_timestamp(collection).pk)
    progress = {k: int(timestamp.progress.get(k, 0)) for k in PROGRESS_KEYS}
    progress["pages"] += 1
    for key in ("records", "skipped", "new_pools", "items_requests", "applies_queued"):
        progress[key] += getattr(page, key)
    progress["current_day"] = next_at.current_day.isoformat()
    timestamp.finish = checkpoint
    timestamp.counter += page.records
    timestamp.progress = progress
    timestamp.achievements = (
        f"MARC records fetched: {progress['records']} (skipped {progress['skipped']}), "
        f"pages {progress['pages']}, new pools {progress['new_pools']}, "
        f"applies queued {progress['applies_queued']}"
    )
    timestamp.save(update_fields=["finish", "counter", "progress", "achievements"])
    return progress
