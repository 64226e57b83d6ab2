"""Edits of a planned exchange: its date, zone or reminder intervals, and what they mean for
its state, its reminders and its purge."""

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchanges.models import Exchange
from exchanges.services.purge import RETENTION_DAYS, start_of_day
from exchanges.services.reminder_planning import plan_reminders


def apply_date_change(*, exchange_id: int, now: datetime | None = None) -> dict[str, Any]:
    """After an exchange's date (or zone) was edited: a completed exchange moved ahead is
    re-opened, one moved to another past date loses a purge warning now too early, one
    moved to another zone loses a warning whose day starts at another moment there (its
    day may begin hours after the purge would run), a matched one gets its reminders
    re-planned (why: docs/exchanges.md)."""
    now = now or timezone.now()
    with transaction.atomic():
        exchange = Exchange.objects.select_for_update().get(pk=exchange_id)
        outcome = "unchanged"
        if exchange.state == Exchange.State.COMPLETED and exchange.exchange_at > now:
            exchange.state = Exchange.State.MATCHED
            exchange.completed_at = exchange.purge_warning_sent_at = exchange.purge_after = None
            outcome = "reopened"
        elif (
            exchange.state == Exchange.State.COMPLETED
            and exchange.purge_after is not None
            and (
                exchange.purge_after < exchange.exchange_at + timedelta(days=RETENTION_DAYS)
                or exchange.purge_after
                != start_of_day(exchange.purge_after.astimezone(exchange.zone).date(), exchange)
            )
        ):
            exchange.purge_warning_sent_at = exchange.purge_after = None
            outcome = "purge warning withdrawn"
        exchange.save(
            update_fields=["state", "completed_at", "purge_warning_sent_at", "purge_after"]
        )
        reminders = None
        if exchange.state == Exchange.State.MATCHED:
            reminders = plan_reminders(exchange_id=exchange_id, now=now)
    return {"exchange_id": exchange_id, "outcome": outcome, "reminders": reminders}


def update_reminder_settings(
    *,
    exchange_id: int,
    reminder_days: list[int] | None = None,
    exchange_at: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Change the intervals and/or the date, then replace the planned reminders (a new
    date goes through apply_date_change: it may re-open a completed exchange)."""
    with transaction.atomic():
        exchange = Exchange.objects.select_for_update().get(pk=exchange_id)
        if reminder_days is not None:
            exchange.reminder_days = list(reminder_days)
        if exchange_at is not None:
            exchange.exchange_at = exchange_at
        exchange.full_clean()
        exchange.save(update_fields=["reminder_days", "exchange_at"])
        if exchange_at is not None:
            return apply_date_change(exchange_id=exchange_id, now=now)["reminders"]
        return plan_reminders(exchange_id=exchange_id, now=now)
