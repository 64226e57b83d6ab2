"""The reminder sweep: send every due reminder once, through the outbox, set-based.

Due rows are claimed `FOR UPDATE SKIP LOCKED` in batches, so two sweeps never take the
same row; a reminder more than the grace period late is marked `missed`, not sent.
"""

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchanges.models import Exchange, Participant, Reminder
from jobs.outbox.notifications import OutgoingNotification, queue_notifications
from jobs.runs.current import flag_for_attention
from jobs.runs.progress import report_progress

GRACE_SECONDS = 3600
BATCH_SIZE = 100
TEMPLATE = "exchanges/notifications/reminder"


def send_due_reminders(
    *,
    now: datetime | None = None,
    exchange_id: int | None = None,
    grace_seconds: int = GRACE_SECONDS,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Queue due reminders to opted-in, active, matched participants; mark late ones missed."""
    now = now or timezone.now()
    late_before = now - timedelta(seconds=grace_seconds)
    due = Reminder.objects.filter(status=Reminder.Status.SCHEDULED, due_at__lte=now)
    if exchange_id is not None:
        due = due.filter(exchange_id=exchange_id)
    on_time = due.filter(due_at__gte=late_before, exchange__state=Exchange.State.MATCHED)
    if dry_run:
        return {
            "dry_run": True,
            "due": on_time.count(),
            "would_miss": due.filter(due_at__lt=late_before).count(),
            "would_skip": due.exclude(exchange__state=Exchange.State.MATCHED).count(),
        }
    result: dict[str, Any] = {"sent": 0, "notifications": 0, "recipients": 0}
    with transaction.atomic():
        missed_ids = _lock_ids(due.filter(due_at__lt=late_before))
        Reminder.objects.filter(pk__in=missed_ids).update(status=Reminder.Status.MISSED)
        skipped_ids = _lock_ids(due.exclude(exchange__state=Exchange.State.MATCHED))
        Reminder.objects.filter(pk__in=skipped_ids).update(status=Reminder.Status.SKIPPED)
    while True:
        with transaction.atomic():
            batch = list(
                on_time.select_for_update(skip_locked=True, of=("self",)).order_by("due_at", "id")[
                    :batch_size
                ]
            )
            if not batch:
                break
            recipients, queued = _queue_batch(batch, now=now)
        result["sent"] += len(batch)
        result["recipients"] += recipients
        result["notifications"] += queued
        report_progress(
            done=result["sent"], unit="reminders", notifications=result["notifications"]
        )
    result["missed"] = len(missed_ids)
    result["missed_ids"] = missed_ids[:100]
    result["skipped_not_matched"] = len(skipped_ids)
    if missed_ids:
        flag_for_attention(f"{len(missed_ids)} reminder(s) were more than {grace_seconds}s late")
    return result


def _lock_ids(rows) -> list[int]:
    return list(rows.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True))


def _queue_batch(batch: list[Reminder], *, now: datetime) -> tuple[int, int]:
    """One query for the participants of all the batch's exchanges, one insert per 500 rows."""
    exchanges = Exchange.objects.in_bulk({r.exchange_id for r in batch})
    people: dict[int, list[dict[str, Any]]] = defaultdict(list)
    # Only people with a draw: a late joiner (or a giver whose recipient withdrew, until the
    # re-match) would be reminded of a gift they have nobody to give.
    for person in Participant.objects.filter(
        exchange_id__in=exchanges,
        reminder_enabled=True,
        withdrawn_at__isnull=True,
        match__isnull=False,
    ).values("id", "exchange_id", "name", "email", "match__receiver__name"):
        people[person["exchange_id"]].append(person)
    notifications = []
    for reminder in batch:
        exchange = exchanges[reminder.exchange_id]
        local = exchange.local_exchange_at
        for person in people[reminder.exchange_id]:
            notifications.append(
                OutgoingNotification(
                    channel="email",
                    recipient=person["email"],
                    template=TEMPLATE,
                    # Stable across re-planning: the same interval and due time is the
                    # same reminder.
                    dedup_key=f"exchanges:reminder:{reminder.exchange_id}:"
                    f"{reminder.days_before}:{reminder.due_at:%Y%m%dT%H%MZ}:{person['id']}",
                    # Useless after the party. The text names the date, never "in 7 days",
                    # which a late delivery (a dead row requeued days later) makes untrue.
                    deliver_before=exchange.exchange_at,
                    context={
                        "exchange_name": exchange.name,
                        "participant_name": person["name"],
                        "receiver_name": person["match__receiver__name"] or "",
                        "local_date": local.strftime("%A %d %B %Y, %H:%M %Z"),
                    },
                )
            )
        reminder.status = Reminder.Status.SENT
        reminder.sent_at = now
        reminder.recipients = len(people[reminder.exchange_id])
    queued = queue_notifications(notifications)
    Reminder.objects.bulk_update(batch, ["status", "sent_at", "recipients"])
    return len(notifications), queued
