"""Delivery dates and the store's "today" (COMMERCE_TIME_ZONE).

The schedule rule lives once, in SQL (migration 0003), because the daily job applies it
inside its statement; Python callers ask the database rather than keep a second copy.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.utils import timezone

from commerce.conf import commerce_settings
from jobs.sql import fetch


def store_zone() -> ZoneInfo:
    """The store's timezone (COMMERCE_TIME_ZONE, default UTC)."""
    return ZoneInfo(str(commerce_settings.TIME_ZONE))


def store_today() -> date:
    """Today in the store's timezone."""
    return timezone.now().astimezone(store_zone()).date()


def store_date(moment: datetime) -> date:
    """The store's local date of an aware moment (a billing cycle's start)."""
    return moment.astimezone(store_zone()).date()


def next_delivery_date(current: date, *, frequency: str, anchor_day: int | None = None) -> date:
    """The delivery after `current`: +7 / +14 days, or next month on the anchor day
    (Jan 31 -> Feb 28 -> Mar 31)."""
    [(day,)] = fetch(
        "SELECT commerce_next_delivery(%(current)s::date, %(frequency)s, %(anchor)s::int)",
        {"current": current, "frequency": frequency, "anchor": anchor_day},
    )
    return day


def due_delivery_date(
    current: date, *, frequency: str, anchor_day: int | None = None, today: date
) -> date:
    """The delivery a subscription whose next date is `current` gets as of `today`:
    `current` when it is late by less than one period, else the last date of its
    schedule on or before today (older missed deliveries are skipped, never made in bulk)."""
    [(day,)] = fetch(
        "SELECT commerce_due_delivery(%(current)s::date, %(frequency)s, %(anchor)s::int,"
        " %(today)s::date)",
        {"current": current, "frequency": frequency, "anchor": anchor_day, "today": today},
    )
    return day


def day_key(day: date) -> str:
    """YYYYMMDD with the year zero-padded (strftime's %Y is not, for years below 1000): the
    date part of a dedup key, the same whichever path queues the notice."""
    return day.isoformat().replace("-", "")
