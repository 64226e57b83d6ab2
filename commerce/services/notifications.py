"""Notifications of the storefront: templates, dedup keys, and plain send_email / send_sms.

Each is an outbox row written in the transaction of the change that causes it, with a
dedup key naming that change, so a rerun or a second worker queues nothing.
"""

import hashlib

from jobs.outbox.notifications import OutgoingNotification, queue_notification

TEMPLATES = "commerce/notifications/"
ORDER_CONFIRMATION = TEMPLATES + "order_confirmation"
OUT_OF_STOCK = TEMPLATES + "subscription_out_of_stock"
ORDER_SHIPPED = TEMPLATES + "order_shipped"
PAYMENT_FAILED = TEMPLATES + "payment_failed"
RENEWAL_REMINDER = TEMPLATES + "subscription_reminder"
DELIVERIES_SKIPPED = TEMPLATES + "subscription_skipped"
PAST_DUE = TEMPLATES + "subscription_past_due"
PLAIN = TEMPLATES + "plain"


def confirmation_key(order_id: int, channel: str) -> str:
    """An order is confirmed once per channel, whichever path made it."""
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
