"""Renewal reminders: subscriptions due the store's tomorrow get one email per delivery
date (the dedup key), whatever the number of runs; one statement per chunk returns them,
queued in the chunk's transaction. A reminder says "tomorrow": one the outbox could not
deliver before the delivery day begins on the store's clock is dead ("too late"), never
sent.
"""

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import transaction

from commerce import sql
from commerce.models import DELIVERED_STATUSES, Subscription
from commerce.services.dates import store_today, store_zone
from commerce.services.notifications import RENEWAL_REMINDER
from jobs.outbox.notifications import OutgoingNotification, queue_notifications
from jobs.runs.progress import report_progress
from jobs.sql import fetch

CHUNK_SIZE = 5000


def send_subscription_renewal_reminders(
    *, as_of: date | None = None, dry_run: bool = False, chunk_size: int = CHUNK_SIZE
) -> dict[str, Any]:
    """Queue the reminder of every delivered subscription due the day after `as_of` (the
    store's today): run at the daily order run's time, 24 hours before that delivery's run."""
    due_date = (as_of or store_today()) + timedelta(days=1)
    if dry_run:
        due = Subscription.objects.filter(
            status__in=DELIVERED_STATUSES, next_delivery_date=due_date
        )
        return {"due_date": due_date.isoformat(), "subscriptions": due.count(), "dry_run": True}
    deliver_before = datetime.combine(due_date, time(0), tzinfo=store_zone())
    subscriptions = queued_total = 0
    after_id = 0
    while True:
        with transaction.atomic():
            params = {"due_date": due_date, "after_id": after_id, "limit": chunk_size}
            [(count, last_id, rows)] = fetch(sql.REMINDER_CHUNK, params)
            if not count:
                break
            # The statement's rows (JSON) address the message; their other columns are
            # the template's context.
            items = [
                OutgoingNotification(
                    channel=row.pop("channel"),
                    recipient=row.pop("recipient"),
                    template=RENEWAL_REMINDER,
                    dedup_key=row.pop("dedup_key"),
                    context=row,
                    deliver_before=deliver_before,
                )
                for row in rows or ()
            ]
            queued = queue_notifications(items) if items else 0
        subscriptions += count
        queued_total += queued
        after_id = last_id
        report_progress(done=subscriptions, unit="subscriptions", reminders=queued_total)
    return {
        "due_date": due_date.isoformat(),
        "subscriptions": subscriptions,
        "reminders_queued": queued_total,
        "already_reminded_or_no_email": subscriptions - queued_total,
        "dry_run": False,
    }
