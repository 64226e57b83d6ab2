"""One page of purchase records: read_page and decide on the I/O pool's threads,
due_items and write_page on the hop's (the only ones with a database connection). A page
is written whole or not at all, with the checkpoint and its apply run."""

import hashlib
import io
import logging
import re
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pymarc
from django.db import transaction

from bibliotheca import sql
from bibliotheca.conf import bibliotheca_settings
from bibliotheca.models import Collection, Identifier, Timestamp
from bibliotheca.services.items import data_hash, edition_row, medium
from bibliotheca.services.windows import ChainRange, Position, checkpoint_after_page, next_position
from jobs.models import JobRun
from jobs.runner import enqueue_job
from jobs.runs.current import current_run

logger = logging.getLogger("bibliotheca")

APPLY_JOB = "bibliotheca.apply_bibliographic"
#: The chain's counters in Timestamp.progress (with `current_day` and `counted_until`).
#: `overlap_*`: what re-reading the minutes before the checkpoint cost; `reread_pages`:
#: pages read again after a resumed hop, written but not counted twice.
PROGRESS_KEYS = (
    "pages",
    "records",
    "skipped",
    "new_pools",
    "items_requests",
    "applies_queued",
    "overlap_pages",
    "overlap_records",
    "reread_pages",
    "gaps",
    "missing_items",
)
BIBLIOTHECA_ID = str(Identifier.Type.BIBLIOTHECA_ID)
#: An item id goes into the items request's path, comma-joined with others, and into
#: Identifier.value: a plain token (a space, ",", "/" or non-ASCII would change the
#: request, or break its signature, and stop the chain on that record for good).
ITEM_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


@dataclass(frozen=True, kw_only=True)
class MarcPage:
    """A MARC page read: its records' ids, where the checkpoint and the next page go."""

    position: Position
    records: int
    #: Records without exactly one 001 (skipped and counted).
    skipped: int
    #: The ids of the records with exactly one 001, first occurrence order.
    item_ids: list[str]
    #: {id: hash of its MARC record} (first occurrence): a changed record is looked up.
    marc_hashes: dict[str, str]
    checkpoint: datetime
    next: Position
    #: The page lies in the re-read window before the checkpoint the chain resumed at.
    overlap: bool = False

    @property
    def ends_window(self) -> bool:
        return self.next.current_day != self.position.current_day


def parse_marc_page(body: bytes) -> list[pymarc.Record]:
    """Records of a MARCXML page; an empty body means no records in the window. Any
    other document (a proxy's page) is not "no records": pymarc would read it as none."""
    if not body.strip():
        return []
    if (root := xml_root(body)) not in ("collection", "record"):
        raise ValueError(f"expected a MARCXML <collection>, got <{root}>")
    return [record for record in pymarc.parse_xml_to_array(io.BytesIO(body)) if record]


def xml_root(body: bytes) -> str | None:
    """Local name of the body's root element, whatever comes before it (an XML
    declaration, a byte order mark); None when it is not XML."""
    try:
        for _event, element in ElementTree.iterparse(io.BytesIO(body), events=("start",)):
            return element.tag.rsplit("}", 1)[-1]
    except ElementTree.ParseError:
        return None
    return None


def bibliotheca_id(record: pymarc.Record) -> str | None:
    """The 001 value, or None when the record has no 001, several, or one that cannot be
    an item id (skipped and counted)."""
    fields = record.get_fields("001")
    value = (fields[0].data or "").strip() if len(fields) == 1 else ""
    return value if ITEM_ID.fullmatch(value) else None


def read_page(
    records: list[pymarc.Record], position: Position, *, chain: ChainRange, collection: str
) -> MarcPage:
    """The page's ids (no database); `collection` is the collection's name."""
    day_end = chain.window_end(position.current_day)
    checkpoint = checkpoint_after_page(position, records_on_page=len(records), day_end=day_end)
    overlap = chain.in_overlap(position.current_day)
    if overlap:  # the re-read never moves the checkpoint behind where the chain resumed
        checkpoint = max(checkpoint, chain.overlap_until)
    where = f"{position.current_day.isoformat()}..{day_end.isoformat()} offset {position.offset}"
    item_ids: list[str] = []
    marc_hashes: dict[str, str] = {}
    for record in records:
        item_id = bibliotheca_id(record)
        if item_id is None:
            found = [(f.data or "")[:80] for f in record.get_fields("001")]
            logger.error(
                "Bibliotheca collection %r, window %s: record without exactly one 001 field "
                "that is an item id (letters, digits, - and _; found %r); skipped",
                collection,
                where,
                found,
            )
        else:
            item_ids.append(item_id)
            marc_hashes.setdefault(item_id, marc_hash(record))
    return MarcPage(
        position=position,
        records=len(records),
        skipped=len(records) - len(item_ids),
        item_ids=list(dict.fromkeys(item_ids)),
        marc_hashes=marc_hashes,
        checkpoint=checkpoint,
        next=next_position(position, records_on_page=len(records), day_end=day_end),
        overlap=overlap,
    )


def marc_hash(record: pymarc.Record) -> str:
    """Hash of a purchase record as the partner sent it (its MARCXML)."""
    return hashlib.sha256(pymarc.record_to_xml(record)).hexdigest()


def due_items(collection: Collection, page: MarcPage, *, now: datetime) -> dict[str, str | None]:
    """{id: stored Edition hash or None} of the page's ids due for a metadata lookup
    (sql.due_items; BIBLIOTHECA_METADATA_REFRESH_DAYS)."""
    if not page.item_ids:
        return {}
    cutoff = now - timedelta(days=bibliotheca_settings.METADATA_REFRESH_DAYS)
    return sql.due_items(collection.pk, page.marc_hashes, type=BIBLIOTHECA_ID, cutoff=cutoff)


@dataclass(frozen=True)
class Decision:
    """What a page writes (decide)."""

    #: Ids whose pools are found or created.
    kept: list[str]
    #: Ids whose items were answered: their pools are stamped `metadata_checked_at`.
    looked: list[str] = field(default_factory=list)
    #: (id, hash, item data) of answered items whose hash differs from the stored one.
    changed: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    #: Records left out by a rule (BIBLIOTHECA_SKIP_MEDIA).
    skipped: int = 0
    items_requests: int = 0
    #: Ids looked up and left out of the partner's answer: pools kept, marked missing.
    missing: list[str] = field(default_factory=list)


def decide(
    page: MarcPage,
    due: dict[str, str | None],
    items: dict[str, dict[str, str]],
    *,
    collection: str,
) -> Decision:
    """The import's rules for one page, in one place (no database, no I/O). `due`: ids
    looked up, with their stored hashes; `items`: the answer."""
    skip_media = bibliotheca_settings.SKIP_MEDIA
    kept, looked, changed, skipped, missing = [], [], [], 0, []
    for item_id in page.item_ids:
        data = items.get(item_id) if item_id in due else None
        if item_id in due and data is None:
            missing.append(item_id)
        if data is not None and medium(data) in skip_media:
            logger.info("Bibliotheca collection %r: %s skipped (medium)", collection, item_id)
            skipped += 1
            continue
        kept.append(item_id)
        if data is not None:
            looked.append(item_id)
            digest = data_hash(data)
            if digest != due[item_id]:
                changed.append((item_id, digest, data))
    if missing:
        logger.warning(
            "Bibliotheca collection %r: %s item(s) left out of the partner's answer (%s); "
            "kept without metadata, not looked up again until their record changes",
            collection,
            len(missing),
            ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else ""),
        )
    return Decision(kept, looked, changed, skipped, items_requests=1 if due else 0, missing=missing)


def write_page(
    collection: Collection,
    page: MarcPage,
    decision: Decision,
    counts: dict[str, Any],
    *,
    timestamp_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Write the page in one transaction (no checkpoint without `timestamp_id`: a gap read
    again); returns the chain's counts after it. A page before `counted_until` (read again
    after a retry or a take-over) is written but counted only in `reread_pages`."""
    after = {key: int(counts.get(key, 0)) for key in PROGRESS_KEYS}
    here = (page.position.current_day, page.position.offset)
    counted_until = counts.get("counted_until")  # [window start (ISO), offset]
    if counted_until and here < (datetime.fromisoformat(counted_until[0]), int(counted_until[1])):
        after["reread_pages"] += 1
    else:
        counted_until = [page.next.current_day.isoformat(), page.next.offset]
        after["pages"] += 1
        after["records"] += page.records
        after["skipped"] += page.skipped + decision.skipped
        after["items_requests"] += decision.items_requests
        after["missing_items"] += len(decision.missing)
        after["overlap_pages"] += page.overlap
        after["overlap_records"] += page.records if page.overlap else 0
    after["counted_until"] = counted_until
    with transaction.atomic() if decision.kept else nullcontext():  # else one statement
        ids = sql.ensure_identifiers(decision.kept, type=BIBLIOTHECA_ID)
        after["new_pools"] += sql.ensure_pools(
            collection.pk,
            {ids[value]: page.marc_hashes[value] for value in decision.kept},
            stamped=[ids[value] for value in decision.looked],
            missing=[ids[value] for value in decision.missing],
            now=now,
        )
        staged = 0
        if decision.changed:  # staged under a batch, for its apply run (handed over at
            # the commit; a run never handed over is reaped)
            batch = uuid.uuid4()
            rows = [edition_row(ids[v], digest, data) for v, digest, data in decision.changed]
            staged = sql.stage_editions(batch, rows, now=now)
        if staged:  # none: every title already staged at its hash by another page
            enqueue_job(
                APPLY_JOB,
                kwargs={"collection_id": collection.pk, "batch": str(batch)},
                trigger=JobRun.Trigger.CHAIN,
                parent=current_run(),
            )
        if after["pages"] > int(counts.get("pages", 0)):  # a page counted (not re-read)
            after["applies_queued"] += staged
        if timestamp_id is not None:
            Timestamp.objects.filter(pk=timestamp_id).update(
                finish=page.checkpoint,
                counter=after["records"],
                progress={**after, "current_day": page.next.current_day.isoformat()},
                achievements=achievements(after),
            )
    return {**after, "current_day": page.next.current_day.isoformat()}


def achievements(counts: dict[str, Any]) -> str:
    """The Timestamp's one-line summary of the chain's counts."""
    return (
        "MARC records fetched: {records} (skipped {skipped}), pages {pages}, "
        "new pools {new_pools}, applies queued {applies_queued}, gaps {gaps}, "
        "missing items {missing_items}"
    ).format(**{key: counts.get(key, 0) for key in PROGRESS_KEYS})
