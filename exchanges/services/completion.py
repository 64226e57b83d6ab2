"""Complete exchanges whose date has passed, in one UPDATE (one commit, however many rows)."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchanges.models import Exchange, Reminder


def complete_exchanges(
    *,
    now: datetime | None = None,
    exchange_ids: list[int] | None = None,
    include_future: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Matched exchanges whose date passed become completed (with completed_at = now).

    `exchange_ids` narrows the set; `include_future` (the admin's "Complete") also takes
    matched exchanges whose date is still ahead. Their unsent reminders are skipped.
    """
    now = now or timezone.now()
    rows = Exchange.objects.filter(state=Exchange.State.MATCHED)
    if not include_future:
        rows = rows.filter(exchange_at__lte=now)
    if exchange_ids is not None:
        rows = rows.filter(pk__in=exchange_ids)
    with transaction.atomic():
        ids = list(rows.select_for_update(skip_locked=True).values_list("pk", flat=True))
        if dry_run:
            return {"dry_run": True, "would_complete": len(ids), "exchange_ids": ids[:100]}
        completed = Exchange.objects.filter(pk__in=ids).update(
            state=Exchange.State.COMPLETED, completed_at=now
        )
        skipped = Reminder.objects.filter(
            exchange_id__in=ids, status=Reminder.Status.SCHEDULED
        ).update(status=Reminder.Status.SKIPPED)
    return {"completed": completed, "exchange_ids": ids[:100], "reminders_skipped": skipped}
