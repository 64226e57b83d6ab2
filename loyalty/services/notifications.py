"""Outbox notifications of the loyalty app: built from chunk rows, deduplicated per card per cycle.

A cycle is one stretch of inactivity, named by the card's `last_activity_at`: the
same card warned or expired twice in one cycle maps to the same dedup key, so a
rerun (or a second worker) never queues a second message.
"""

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from jobs.services.outbox import OutgoingNotification, outbox_insert_sql

WARNING_TEMPLATE = "loyalty/notifications/points_expiring"
EXPIRED_TEMPLATE = "loyalty/notifications/points_expired"


class CardRow(NamedTuple):
    """One card returned by a chunk statement, with what its customer needs to hear.

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


def _channel(row: CardRow) -> tuple[str, str] | None:
    if row.email:
        return "email", row.email
    if row.phone:
        return "sms", row.phone
    return None


def warning_notifications(
    rows: list[CardRow], *, merchant_name: str, expiration_days: int, now: datetime
) -> list[OutgoingNotification]:
    """One `points_expiring` per card that has a way to be reached."""
    items = []
    for row in rows:
        channel = _channel(row)
        if channel is None:
            continue
        expires_at = row.last_activity_at + timedelta(days=expiration_days)
        days_remaining = max(0, (expires_at - now).days)
        items.append(
            OutgoingNotification(
                channel=channel[0],
                recipient=channel[1],
                template=WARNING_TEMPLATE,
                dedup_key=f"points_expiring:{row.card_id}:{cycle_key(row)}",
                context={
                    "customer_name": row.customer_name,
                    "card_number": row.number,
                    "merchant_name": merchant_name,
                    "points": row.points,
                    "expiration_date": expires_at.strftime("%Y-%m-%d"),
                    "days_remaining": days_remaining,
                },
            )
        )
    return items


def expired_notifications(
    rows: list[CardRow], *, merchant_name: str, expiration_days: int
) -> list[OutgoingNotification]:
    """One `points_expired` per expired card that has a way to be reached."""
    items = []
    for row in rows:
        channel = _channel(row)
        if channel is None:
            continue
        items.append(
            OutgoingNotification(
                channel=channel[0],
                recipient=channel[1],
                template=EXPIRED_TEMPLATE,
                dedup_key=f"points_expired:{row.card_id}:{cycle_key(row)}",
                context={
                    "customer_name": row.customer_name,
                    "card_number": row.number,
                    "merchant_name": merchant_name,
                    "points": row.points,
                    "expiration_days": expiration_days,
                },
            )
        )
    return items


def expired_outbox_sql(
    *, merchant_name: str, expiration_days: int
) -> tuple[str, dict[str, Any]] | None:
    """`expired_notifications`, rendered in SQL from loyalty.sql's `notify` rows (same
    context, same text); None when the templates need the engine."""
    return outbox_insert_sql(
        source="notify",
        template=EXPIRED_TEMPLATE,
        columns={"customer_name": "text", "card_number": "text", "points": "int"},
        constants={"merchant_name": merchant_name, "expiration_days": expiration_days},
    )


def warning_outbox_sql(
    *, merchant_name: str, expiration_days: int
) -> tuple[str, dict[str, Any]] | None:
    """`warning_notifications`, rendered in SQL from loyalty.sql's `notify` rows."""
    return outbox_insert_sql(
        source="notify",
        template=WARNING_TEMPLATE,
        columns={
            "customer_name": "text",
            "card_number": "text",
            "points": "int",
            "expiration_date": "text",
            "days_remaining": "int",
        },
        constants={"merchant_name": merchant_name},
    )
