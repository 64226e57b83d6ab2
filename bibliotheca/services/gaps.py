"""Gaps: day windows a chain gave up on after its retries, so that one bad day does not
hold the collection's checkpoint; later chains read them again at their end (models.Gap,
docs/bibliotheca.md "Gaps")."""

import math
import time
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bibliotheca.models import Collection, Gap, Timestamp
from bibliotheca.services.pages import achievements, due_items, write_page
from bibliotheca.services.reading import PageReader, ReadFailure
from bibliotheca.services.windows import ChainRange, Position
from jobs.exceptions import PermanentJobError, TransientJobError

#: Failures a gap's later try records on the gap instead of failing the chain's hop.
REMOTE_ERRORS = (TransientJobError, PermanentJobError)


def record_gap(
    collection: Collection,
    *,
    day: datetime,
    window_end: datetime,
    error: BaseException,
    attempts: int,
    timestamp_id: int,
    counts: dict[str, Any],
) -> dict[str, Any]:
    """Record [day, window_end) as an open gap and move the checkpoint to its end, in one
    transaction; returns the chain's counts with the gap counted."""
    now = timezone.now()
    after = {**counts, "gaps": int(counts.get("gaps", 0)) + 1}
    after["current_day"] = window_end.isoformat()
    text = f"{type(error).__name__}: {error}"[:5000]
    with transaction.atomic():
        gap, created = Gap.objects.select_for_update().get_or_create(
            collection=collection,
            day=day,
            defaults={"window_end": window_end, "error": text, "attempts": attempts},
        )
        if not created:  # the same window failing again (a force reimport): reopened
            Gap.objects.filter(pk=gap.pk).update(
                window_end=window_end,
                status=Gap.Status.OPEN,
                error=text,
                attempts=F("attempts") + attempts,
                last_tried_at=now,
                resolved_at=None,
            )
        Timestamp.objects.filter(pk=timestamp_id).update(
            finish=window_end, progress=after, achievements=achievements(after)
        )
    return after


def due_gaps(collection: Collection, *, chain_started: datetime):
    """Open gaps of the collection not tried since the chain started, oldest first."""
    return Gap.objects.filter(
        collection=collection, status=Gap.Status.OPEN, last_tried_at__lt=chain_started
    ).order_by("day")


def retry_due_gaps(
    collection: Collection, *, chain_started: datetime, deadline: float
) -> dict[str, Any]:
    """Read the due gaps again, one after the other until `deadline` (at least one);
    returns counts for the hop's result, with `gaps_left` still due this chain."""
    tried = resolved = records = 0
    for gap in due_gaps(collection, chain_started=chain_started):
        if tried and time.monotonic() >= deadline:
            break
        tried += 1
        ok, read = retry_gap(collection, gap)
        resolved += ok
        records += read
    left = due_gaps(collection, chain_started=chain_started).count()
    return {
        "gaps_retried": tried,
        "gaps_resolved": resolved,
        "gap_records": records,
        "gaps_left": left,
    }


def retry_gap(collection: Collection, gap: Gap) -> tuple[bool, int]:
    """Read the gap's window whole (pools and applies as any page; the checkpoint stays):
    (resolved, records read). A remote failure is recorded on the gap, which stays open."""
    chain = ChainRange(since=gap.day, until=gap.window_end)
    counts: dict[str, Any] = {}
    error: BaseException | None = None
    with PageReader(collection, Position(current_day=gap.day, offset=1), chain, math.inf, 1) as r:
        for page in r.pages():
            if isinstance(page, ReadFailure):
                error = page.error
                break
            due = due_items(collection, page, now=timezone.now())
            try:
                decision = r.look_up(page, due).result()
            except REMOTE_ERRORS as exc:
                error = exc
                break
            counts = write_page(
                collection, page, decision, counts, timestamp_id=None, now=timezone.now()
            )
    if error is not None and not isinstance(error, REMOTE_ERRORS):
        raise error
    now = timezone.now()
    changes: dict[str, Any] = {"attempts": F("attempts") + 1, "last_tried_at": now}
    if error is None:
        changes.update(status=Gap.Status.RESOLVED, resolved_at=now)
    else:
        changes["error"] = f"{type(error).__name__}: {error}"[:5000]
    Gap.objects.filter(pk=gap.pk, status=Gap.Status.OPEN).update(**changes)
    return error is None, int(counts.get("records", 0))
