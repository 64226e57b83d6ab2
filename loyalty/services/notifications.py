"""Outbox notifications of the loyalty app: built from chunk rows, deduplicated per card per cycle.

A cycle is one stretch of inactivity, named by the card's `last_activity_at`: the
same card warned or expired twice in one cycle maps to the same dedup key, so a
rerun (or a second worker) never queues a second message.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from jobs.services.outbox import OutgoingNotification

WARNING_TEMPLATE = "loyalty/notifications/points_expiring"
EXPIRED_TEMPLATE = "loyalty/notifications/points_expired"


class CardRow(NamedTuple):
    """One card returned by a pick statement, with what its customer needs to hear.

    A named tuple: built straight from the statement's rows (`CardRow._make`), in column
    order (loyalty.sql), 200,000 times in a big run.
    """

    #: Card primary key.
    card_id: int
    #: Printed card number.
    number: str
    #: Points expiring (warning) or expired (expiration).
    points: int
    #: Start of the inactivity cycle.
    last_activity_at: datetime
    customer_name: str
    email: str
    phone: str


def cycle_key(row: CardRow) -> str:
    return row.last_activity_at.strftime("%Y%m%dT%H%M%S")


def _notifications(
    rows: list[CardRow], *, template: str, context: Callable[[CardRow], dict[str, Any]]
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
                dedup_key=f"{kind}:{row.card_id}:{cycle_key(row)}",
                context=context(row),
            )
        )
    return items


def warning_notifications(
    rows: list[CardRow], *, merchant_name: str, expiration_days: int, now: datetime
) -> list[OutgoingNotification]:
    """One `points_expiring` per card that has a way to be reached."""

    def context(row: CardRow) -> dict[str, Any]:
        expires_at = row.last_activity_at + timedelta(days=expiration_days)
        return {
            "customer_name": row.customer_name,
            "card_number": row.number,
            "merchant_name": merchant_name,
            "points": row.points,
            "expiration_date": expires_at.strftime("%Y-%m-%d"),
            "days_remaining": max(0, (expires_at - now).days),
        }

    return _notifications(rows, template=WARNING_TEMPLATE, context=context)


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
