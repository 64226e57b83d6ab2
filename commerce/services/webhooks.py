"""Razorpay webhooks: verify, store once, answer at once; a job processes the event.

The signature is HMAC-SHA256 of the raw body with the webhook secret, hex, in
`X-Razorpay-Signature`. We compute it with the standard library on the raw bytes and
compare in constant time. (The `razorpay` SDK is light, but its
`Utility.verify_webhook_signature` takes the body as text and re-encodes it, and
`hmac.compare_digest` on text raises TypeError for a non-ASCII header: both would
turn a forged request into a 500 instead of a 400. Four lines of hmac do not need it.)

The event id comes from `X-Razorpay-Event-Id`; without one, a hash of the body stands in
(a replay of the same body is the same event). Storing it is one INSERT ... ON
CONFLICT DO NOTHING: a replay finds it, answers 200 and queues nothing.
"""

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from commerce.exceptions import BadEvent, CommerceError
from commerce.models import Subscription, WebhookEvent
from commerce.services.notifications import PAYMENT_FAILED
from commerce.services.payments import charge_subscription
from jobs.context import flag_for_attention
from jobs.models import JobRun
from jobs.services.outbox import OutgoingNotification, queue_notification

logger = logging.getLogger("commerce.webhooks")

PROCESS_JOB = "commerce.process_webhook_event"


def signature_for(body: bytes, secret: str) -> str:
    """Razorpay's signature of `body`: hex HMAC-SHA256 keyed with the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(body: bytes, signature: str | None, secret: str) -> bool:
    """Constant-time check of the header against the body; False when either is missing."""
    if not signature or not secret:
        return False
    expected = signature_for(body, secret).encode()
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def event_id_for(body: bytes, header: str | None) -> str:
    if header and header.strip():
        return header.strip()[:128]
    return "body:" + hashlib.sha256(body).hexdigest()


def record_event(*, event_id: str, event_type: str, payload: dict[str, Any]) -> tuple[int, bool]:
    """Store a verified event and queue its processing, in one transaction; (id, new?)."""
    from jobs.runner import enqueue_job

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO commerce_webhookevent
                       (provider, event_id, event_type, payload, received_at, outcome, detail)
                VALUES ('razorpay', %s, %s, %s::jsonb, %s, 'pending', '')
                ON CONFLICT (event_id) DO NOTHING
                RETURNING id
                """,
                [event_id, event_type[:64], json.dumps(payload), timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            existing = WebhookEvent.objects.only("pk").get(event_id=event_id)
            return existing.pk, False
        enqueue_job(
            PROCESS_JOB,
            kwargs={"event_id": row[0]},
            trigger=JobRun.Trigger.CHAIN,
            triggered_by="webhook:razorpay",
        )
    return row[0], True


def process_event(*, event_id: int, actor: str) -> dict[str, Any]:
    """Act on a stored event once more (safe: every action is keyed), record the outcome.

    A problem with the event itself (unknown subscription, out of stock, missing field)
    is recorded `failed` with what to do, and the run is flagged; a database error
    leaves the event pending and fails the run, which is retried.
    """
    event = WebhookEvent.objects.get(pk=event_id)
    outcome, detail, result = WebhookEvent.Outcome.IGNORED, "type not handled", {}
    try:
        if event.event_type == "subscription.charged":
            result = _charged(event.payload, actor=actor)
            outcome, detail = WebhookEvent.Outcome.PROCESSED, _describe(result)
        elif event.event_type == "payment.failed":
            result = _payment_failed(event.payload, event_id=event.event_id)
            outcome, detail = WebhookEvent.Outcome.PROCESSED, _describe(result)
    except CommerceError as exc:
        outcome, detail = WebhookEvent.Outcome.FAILED, str(exc)
        flag_for_attention(f"webhook event {event.event_id} ({event.event_type}): {exc}")
        logger.error("webhook event %s failed: %s", event.event_id, exc)
    WebhookEvent.objects.filter(pk=event.pk).update(
        outcome=outcome, detail=detail[:2000], processed_at=timezone.now()
    )
    return {"event_id": event.event_id, "type": event.event_type, "outcome": str(outcome), **result}


def _describe(result: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in result.items())


def _entity(payload: dict[str, Any], name: str) -> dict[str, Any]:
    entity = ((payload.get("payload") or {}).get(name) or {}).get("entity")
    return entity if isinstance(entity, dict) else {}


def _charged(payload: dict[str, Any], *, actor: str) -> dict[str, Any]:
    subscription = _entity(payload, "subscription")
    payment = _entity(payload, "payment")
    provider_id = subscription.get("id")
    start = subscription.get("current_start")
    if not isinstance(provider_id, str) or not isinstance(start, int):
        raise BadEvent("subscription.charged without payload.subscription.entity id/current_start")
    # The charged cycle's start is the delivery it pays for (a UTC date, as the daily job's).
    billing_date = datetime.fromtimestamp(start, tz=UTC).date()
    return charge_subscription(
        provider_subscription_id=provider_id,
        billing_date=billing_date,
        payment_id=str(payment.get("id") or ""),
        actor=actor,
    )


def _payment_failed(payload: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    payment = _entity(payload, "payment")
    provider_id = _entity(payload, "subscription").get("id") or payment.get("subscription_id")
    sub = (
        Subscription.objects.select_related("customer", "product")
        .filter(provider_subscription_id=provider_id)
        .first()
        if provider_id
        else None
    )
    email = sub.customer.email if sub else str(payment.get("email") or "")
    if not email:
        return {"emailed": False, "reason": "no email for this payment"}
    amount = payment.get("amount")
    currency = str(payment.get("currency") or "INR")
    queued = queue_notification(
        OutgoingNotification(
            channel="email",
            recipient=email,
            template=PAYMENT_FAILED,
            dedup_key=f"payment_failed:{payment.get('id') or event_id}",
            context={
                "customer_name": sub.customer.name if sub else "customer",
                "amount": f"{currency} {amount / 100:.2f}" if isinstance(amount, int) else currency,
                "product_name": sub.product.name if sub else "your order",
                "reason": str(payment.get("error_description") or "declined"),
            },
        )
    )
    return {"emailed": queued, "subscription_id": sub.pk if sub else None}
