"""Delivery dates: the same rule as commerce.sql.NEXT_DATE, for the webhook, admin and tests."""

import calendar
from datetime import date, timedelta


def next_delivery_date(current: date, *, frequency: str, anchor_day: int | None = None) -> date:
    """The delivery after `current`: +7 / +14 days, or next month on the anchor day.

    Monthly keeps the anchor day (the first delivery's day of the month) rather than the
    current date's day, so Jan 31 -> Feb 28 (29 in a leap year) -> Mar 31, not Mar 28.
    """
    if frequency == "weekly":
        return current + timedelta(days=7)
    if frequency == "biweekly":
        return current + timedelta(days=14)
    if frequency != "monthly":
        raise ValueError(f"unknown frequency {frequency!r}")
    year, month = (
        (current.year + 1, 1) if current.month == 12 else (current.year, current.month + 1)
    )
    day = min(anchor_day or current.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)
