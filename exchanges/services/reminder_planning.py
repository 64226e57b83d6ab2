"""Plan an exchange's reminders: the same local wall-clock time N days before, in its zone.

Days subtracted from a UTC datetime would move a reminder by an hour on the
participants' clock across a DST change, so the subtraction happens on the local wall
clock (zoneinfo) and only the result is converted to UTC.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from exchanges.models import Exchange, Reminder


def reminder_due_at(*, exchange_at: datetime, zone: ZoneInfo, days_before: int) -> datetime:
    """UTC moment of the local wall-clock time `days_before` days before `exchange_at`.

    A wall time that does not exist (spring-forward gap) resolves with the offset before
    the change, i.e. one hour later on the clock, as zoneinfo's fold=0 does.
    """
    local = exchange_at.astimezone(zone)
    wall = local.replace(tzinfo=None) - timedelta(days=days_before)
    return wall.replace(tzinfo=zone).astimezone(UTC)


#: An interval already sent (or missed) is not planned again unless its due time moves by
#: at least this much: a new zone for the same moment (DST rules move the wall clock by
#: an hour) or a party 30 minutes later is the same party, a week later is a new one.
RESEND_AFTER_MOVE = timedelta(days=1)


def plan_reminders(*, exchange_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Replace the exchange's scheduled reminders with one row per configured interval.

    Rows already sent or missed stay as history, and their interval is not planned again
    while its due time stays within RESEND_AFTER_MOVE of theirs. Past due times are
    recorded `skipped`.
    """
    now = now or timezone.now()
    with transaction.atomic():
        exchange = Exchange.objects.select_for_update().get(pk=exchange_id)
        deleted, _ = exchange.reminders.filter(
            status__in=[Reminder.Status.SCHEDULED, Reminder.Status.SKIPPED]
        ).delete()
        if exchange.state != Exchange.State.MATCHED:
            return {"exchange_id": exchange_id, "replaced": deleted, "scheduled": 0, "skipped": 0}
        done = list(
            exchange.reminders.exclude(status=Reminder.Status.SCHEDULED).values_list(
                "days_before", "due_at"
            )
        )
        rows = []
        for days_before in sorted(set(exchange.reminder_days), reverse=True):
            due_at = reminder_due_at(
                exchange_at=exchange.exchange_at, zone=exchange.zone, days_before=days_before
            )
            if any(d == days_before and abs(due_at - sent) < RESEND_AFTER_MOVE for d, sent in done):
                continue
            status = Reminder.Status.SCHEDULED if due_at > now else Reminder.Status.SKIPPED
            rows.append(
                Reminder(exchange=exchange, days_before=days_before, due_at=due_at, status=status)
            )
        Reminder.objects.bulk_create(rows)
    scheduled = sum(1 for r in rows if r.status == Reminder.Status.SCHEDULED)
    return {
        "exchange_id": exchange_id,
        "replaced": deleted,
        "scheduled": scheduled,
        "skipped": len(rows) - scheduled,
    }
