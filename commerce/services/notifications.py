"""Notifications of the storefront: templates, dedup keys, and plain send_email / send_sms.

Each is an outbox row written in the transaction of the change that causes it, with a
dedup key naming that change, so a rerun or a second worker queues nothing.
"""

import hashlib
from typing import Any

from jobs.outbox.notifications import OutgoingNotification, queue_notification, queue_notifications

TEMPLATES = "commerce/notifications/"
ORDER_CONFIRMATION = TEMPLATES + "order_confirmation"
OUT_OF_STOCK = TEMPLATES + "subscription_out_of_stock"
ORDER_SHIPPED = TEMPLATES + "order_shipped"
PAYMENT_FAILED = TEMPLATES + "payment_failed"
RENEWAL_REMINDER = TEMPLATES + "subscription_reminder"
DELIVERIES_SKIPPED = TEMPLATES + "subscription_skipped"
PAST_DUE = TEMPLATES + "subscription_past_due"
PLAIN = TEMPLATES + "plain"

#: Columns of a chunk statement's notification rows that address the message; the
#: other columns are the template's context.
_ADDRESS = ("channel", "recipient", "dedup_key")


def queue_rows(template: str, rows: list[dict[str, Any]] | None) -> int:
    """Render (the `notifications` engine) and queue a chunk statement's notification rows.

    Called in the chunk's transaction (commerce.sql returns the rows as JSON): the change
    and its messages commit together, and a template that cannot render rolls both
    back. Returns how many rows were new to the outbox (a known dedup key is skipped).
    """
    items = [
        OutgoingNotification(
            channel=row["channel"],
            recipient=row["recipient"],
            template=template,
            dedup_key=row["dedup_key"],
            context={key: value for key, value in row.items() if key not in _ADDRESS},
        )
        for row in rows or ()
    ]
    return queue_notifications(items) if items else 0


def confirmation_key(order_id: int, channel: str) -> str:
    """The same key commerce.sql writes: an order is confirmed once per channel."""
    return f"order_confirmation:{order_id}:{channel}"


def send_email(*, to: str, subject: str, body: str, dedup_key: str | None = None) -> bool:
    """Queue a plain email (no template of its own); False when its key was queued before.

    Without `dedup_key` the key is a hash of recipient, subject and body: the same
    message queued twice (a retried caller) goes out once.
    """
    return _send_plain("email", to, subject, body, dedup_key)


def send_sms(*, to: str, body: str, dedup_key: str | None = None) -> bool:
    """Queue a plain SMS; False when its key was queued before."""
    return _send_plain("sms", to, "", body, dedup_key)


def _send_plain(channel: str, to: str, subject: str, body: str, dedup_key: str | None) -> bool:
    digest = hashlib.sha256(f"{to}\0{subject}\0{body}".encode()).hexdigest()[:32]
    return queue_notification(
        OutgoingNotification(
            channel=channel,
            recipient=to,
            template=PLAIN,
            dedup_key=dedup_key or f"plain:{digest}",
            context={"subject": subject, "body": body},
        )
    )
