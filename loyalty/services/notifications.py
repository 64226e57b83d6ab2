"""Outbox notifications of the loyalty app: built from chunk rows, deduplicated per card per cycle.

A cycle is one stretch of inactivity, named by the card's `last_activity_at`: the
same card warned or expired twice in one cycle maps to the same dedup key, so a
rerun (or a second worker) never queues a second message. A warning's key also names
the day it promises: a lengthened program's new warning (a later day) is a new message.
"""

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NamedTuple

from jobs.outbox.notifications import OutgoingNotification
from loyalty.selectors import ExpirationDay

WARNING_TEMPLATE = "loyalty/notifications/points_expiring"
EXPIRED_TEMPLATE = "loyalty/notifications/points_expired"


class CardRow(NamedTuple):
    """One card returned by a pick statement (in loyalty.sql's column order), with what its
    customer needs to hear: a named tuple, built 200,000 times in a big run."""

    card_id: int
    number: str
    #: Points expiring (warning) or expired (expiration).
    points: int
    #: Start of the inactivity cycle.
    last_activity_at: datetime
    customer_name: str
    email: str
    phone: str
    #: The day the card's warning for this cycle promised (read by the expiration phase).
    expire_on: date | None = None


def cycle_key(row: CardRow) -> str:
    return row.last_activity_at.strftime("%Y%m%dT%H%M%S")


def _promise_key(row: CardRow, expire_on: date) -> str:
    return f"{cycle_key(row)}:{expire_on:%Y%m%d}"


def warning_key(row: CardRow, expire_on: date) -> str:
    """The dedup key of the warning about `row`'s cycle that promised `expire_on`."""
    return f"points_expiring:{row.card_id}:{_promise_key(row, expire_on)}"


def is_reachable(row: CardRow) -> bool:
    """Whether the customer has an email or a phone: the others are warned by nothing."""
    return bool(row.email or row.phone)


def _notifications(
    rows: list[CardRow],
    *,
    template: str,
    context: Callable[[CardRow], dict[str, Any]],
    key: Callable[[CardRow], str] = cycle_key,
    deliver_before: Callable[[CardRow], datetime | None] = lambda row: None,
) -> list[OutgoingNotification]:
    """One notification per card with an email (else a phone); cards with neither get none."""
    kind = template.rsplit("/", 1)[-1]
    items = []
    for row in rows:
        if row.email:
            channel, recipient = "email", row.email
        elif row.phone:
            channel, recipient = "sms", row.phone
        else:
            continue
        items.append(
            OutgoingNotification(
                channel=channel,
                recipient=recipient,
                template=template,
                dedup_key=f"{kind}:{row.card_id}:{key(row)}",
                context=context(row),
                deliver_before=deliver_before(row),
            )
        )
    return items


def warning_notifications(
    rows: list[CardRow], *, merchant_name: str, day: ExpirationDay
) -> list[OutgoingNotification]:
    """One `points_expiring` per card that has a way to be reached, with the promised day
    (merchant's calendar): a date, never a count of days, which a late delivery (a dead
    warning requeued) would make untrue."""

    def context(row: CardRow) -> dict[str, Any]:
        expire_on = day.promise(row.last_activity_at)
        return {
            "customer_name": row.customer_name,
            "card_number": row.number,
            "merchant_name": merchant_name,
            "points": row.points,
            "expiration_date": expire_on.isoformat(),
        }

    return _notifications(
        rows,
        template=WARNING_TEMPLATE,
        context=context,
        key=lambda row: _promise_key(row, day.promise(row.last_activity_at)),
        # A warning of a date is useless once that date has come.
        deliver_before=lambda row: day.start_of(day.promise(row.last_activity_at)),
    )


def expired_notifications(
    rows: list[CardRow], *, merchant_name: str, expiration_days: int
) -> list[OutgoingNotification]:
    """One `points_expired` per expired card that has a way to be reached."""

    def context(row: CardRow) -> dict[str, Any]:
        return {
            "customer_name": row.customer_name,
            "card_number": row.number,
            "merchant_name": merchant_name,
            "points": row.points,
            "expiration_days": expiration_days,
        }

    return _notifications(rows, template=EXPIRED_TEMPLATE, context=context)
