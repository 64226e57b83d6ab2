"""Razorpay webhooks: verify, store once, answer at once; a job processes the event.

The signature is checked with the standard library on the raw bytes, not the `razorpay`
SDK: its `Utility.verify_webhook_signature` takes the body as text and re-encodes it, and
`hmac.compare_digest` on text raises TypeError for a non-ASCII header: a forged request
would be a 500 instead of a 400.
"""

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from commerce.exceptions import BadEvent, CommerceError, UnknownSubscription
from commerce.models import FINAL_STATUSES, Order, Subscription, WebhookEvent
from commerce.services.dates import store_date
from commerce.services.events import ProviderEvent, parse_event
from commerce.services.lifecycle import (
    CHANGES,
    change_subscriptions,
    newest_provider_event,
    tell_past_due,
)
from commerce.services.notifications import PAYMENT_FAILED
from commerce.services.payments import charge_subscription
from jobs.models import JobRun
from jobs.outbox.notifications import OutgoingNotification, queue_notification
from jobs.runs.current import flag_for_attention
from jobs.sql import fetch

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


#: Event ids we store: printable ASCII, as the provider's are (`evt_...`).
_EVENT_ID = re.compile(r"[\x20-\x7e]{1,128}")


def event_id_for(body: bytes, header: str | None) -> str | None:
    """The provider's event id, else a hash of the body; None for an id that is not
    printable ASCII of at most 128 characters (refused, never stored altered)."""
    if header is None or not header.strip():
        return "body:" + hashlib.sha256(body).hexdigest()
    event_id = header.strip()
    return event_id if _EVENT_ID.fullmatch(event_id) else None


def record_event(*, event_id: str, event_type: str, payload: dict[str, Any]) -> tuple[int, bool]:
    """Store a verified event and queue its processing, in one transaction; (id, new?)."""
    from jobs.runner import enqueue_job

    with transaction.atomic():
        rows = fetch(
            """
            INSERT INTO commerce_webhookevent
                   (provider, event_id, event_type, payload, received_at, outcome, detail)
            VALUES ('razorpay', %(id)s, %(type)s, %(payload)s::jsonb, %(now)s, 'pending', '')
            ON CONFLICT (event_id) DO NOTHING
            RETURNING id
            """,
            {
                "id": event_id,
                "type": event_type[:64],
                "payload": json.dumps(payload),
                "now": timezone.now(),
            },
        )
        if not rows:
            return WebhookEvent.objects.only("pk").get(event_id=event_id).pk, False
        [(pk,)] = rows
        enqueue_job(
            PROCESS_JOB,
            kwargs={"event_id": pk},
            trigger=JobRun.Trigger.CHAIN,
            triggered_by="webhook:razorpay",
        )
    return pk, True


def process_event(*, event_id: int, actor: str) -> dict[str, Any]:
    """Act on a stored event once more (safe: every action is keyed), record the outcome.

    An event we cannot use (malformed though signed, unknown subscription, out of stock)
    is recorded `failed` at once with what to do, and the run is flagged (a /health/
    warning); the run itself succeeds, so it is not retried: retrying cannot fix the
    event. A database error leaves the event pending and fails the run, which is retried.
    """
    stored = WebhookEvent.objects.get(pk=event_id)
    outcome, detail, result = WebhookEvent.Outcome.IGNORED, "type not handled", {}
    try:
        handler = HANDLERS.get(stored.event_type)
        if handler is not None:
            outcome, result = handler(parse_event(stored.payload), actor=actor, stored=stored)
            detail = ", ".join(f"{key} {value}" for key, value in result.items())
    except CommerceError as exc:
        outcome, detail = WebhookEvent.Outcome.FAILED, str(exc)
        flag_for_attention(f"webhook event {stored.event_id} ({stored.event_type}): {exc}")
        logger.error("webhook event %s failed: %s", stored.event_id, exc)
    WebhookEvent.objects.filter(pk=stored.pk).update(
        outcome=outcome, detail=detail[:2000], processed_at=timezone.now()
    )
    return {
        "event_id": stored.event_id,
        "type": stored.event_type,
        "outcome": str(outcome),
        **result,
    }


#: What a handler reports: the event's outcome and the run's result.
Handled = tuple[str, dict[str, Any]]


def _charged(event: ProviderEvent, *, actor: str, stored: WebhookEvent) -> Handled:
    """The cycle's start and end, as the store's local dates, find the delivery it pays."""
    if not event.subscription_id or event.cycle_start is None:
        raise BadEvent(
            "subscription.charged without payload.subscription.entity id and current_start"
        )
    end = event.cycle_end
    result = charge_subscription(
        provider_subscription_id=event.subscription_id,
        billing_date=store_date(datetime.fromtimestamp(event.cycle_start, tz=UTC)),
        cycle_end=store_date(datetime.fromtimestamp(end, tz=UTC)) if end is not None else None,
        payment_id=event.payment_id,
        actor=actor,
        created_at=event.created_at,
    )
    return WebhookEvent.Outcome.PROCESSED, result


def _subscription(event: ProviderEvent) -> Subscription | None:
    """The event's subscription, with its customer and product; None for none."""
    subscriptions = Subscription.objects.select_related("customer", "product")
    return subscriptions.filter(provider_subscription_id=event.subscription_id).first()


def _lifecycle(change: str) -> Callable[..., Handled]:
    """A handler that mirrors the provider's state change (commerce.services.lifecycle)."""

    def handle(event: ProviderEvent, *, actor: str, stored: WebhookEvent) -> Handled:
        if not event.subscription_id:
            raise BadEvent("no payload.subscription.entity.id")
        sub = _subscription(event)
        if sub is None:
            raise UnknownSubscription(f"no subscription has provider id {event.subscription_id!r}")
        if sub.status in FINAL_STATUSES:
            return WebhookEvent.Outcome.IGNORED, {
                "subscription_id": sub.pk,
                "status": f"{sub.status} (final, left alone)",
            }
        with transaction.atomic():
            if not newest_provider_event(sub.pk, event.created_at):
                return WebhookEvent.Outcome.IGNORED, {
                    "subscription_id": sub.pk,
                    "status": f"{sub.status} (event older than one already acted on)",
                }
            changed = change_subscriptions(
                action=change,
                subscription_ids=[sub.pk],
                actor=actor,
                details={"event_id": stored.event_id},
            )
            if not changed:
                return WebhookEvent.Outcome.IGNORED, {
                    "subscription_id": sub.pk,
                    "status": f"{sub.status} (no change)",
                }
            result: dict[str, Any] = {
                "subscription_id": sub.pk,
                "status": str(CHANGES[change].to),
            }
            if change == "provider_pending":
                cycle = str(event.cycle_start or stored.event_id)
                result["customer_told"] = tell_past_due(sub, cycle=cycle)
        return WebhookEvent.Outcome.PROCESSED, result

    return handle


def _recorded(event: ProviderEvent, *, actor: str, stored: WebhookEvent) -> Handled:
    """Events with no local state to change (authenticated: before the first charge;
    updated: plan or quantity changed at the provider, its state unchanged)."""
    return WebhookEvent.Outcome.PROCESSED, {"local_change": "none"}


def _payment_failed(event: ProviderEvent, *, actor: str, stored: WebhookEvent) -> Handled:
    """One email per failed payment; none for a payment that paid an order (a late or
    repeated failure report would tell a customer who paid that they did not)."""
    if event.payment_id:
        paid = (
            Order.objects.filter(provider_payment_id=event.payment_id[:64])
            .values_list("pk", flat=True)
            .first()
        )
        if paid is not None:
            return WebhookEvent.Outcome.IGNORED, {
                "paid_order_id": paid,
                "emailed": False,
                "reason": f"payment {event.payment_id} paid order {paid}",
            }
    sub = _subscription(event) if event.subscription_id else None
    email = sub.customer.email if sub else event.email
    if not email:
        return WebhookEvent.Outcome.PROCESSED, {
            "emailed": False,
            "reason": "no email for this payment",
        }
    amount = (
        f"{event.currency} {event.amount // 100}.{event.amount % 100:02d}"
        if event.amount is not None
        else event.currency
    )
    queued = queue_notification(
        OutgoingNotification(
            channel="email",
            recipient=email,
            template=PAYMENT_FAILED,
            dedup_key=f"payment_failed:{event.payment_id or stored.event_id}",
            context={
                "customer_name": sub.customer.name if sub else "customer",
                "amount": amount,
                "product_name": sub.product.name if sub else "your order",
                "reason": event.error_description or "declined",
            },
        )
    )
    return WebhookEvent.Outcome.PROCESSED, {
        "emailed": queued,
        "subscription_id": sub.pk if sub else None,
    }


#: Razorpay's subscription events and payment.failed (docs/commerce.md has the table:
#: provider event -> local state -> deliveries). Other types are stored and ignored.
HANDLERS: dict[str, Callable[..., Handled]] = {
    "subscription.authenticated": _recorded,
    "subscription.activated": _lifecycle("provider_active"),
    "subscription.charged": _charged,
    "subscription.pending": _lifecycle("provider_pending"),
    "subscription.halted": _lifecycle("provider_halted"),
    "subscription.paused": _lifecycle("provider_paused"),
    "subscription.resumed": _lifecycle("provider_active"),
    "subscription.updated": _recorded,
    "subscription.cancelled": _lifecycle("provider_cancelled"),
    "subscription.completed": _lifecycle("provider_completed"),
    "payment.failed": _payment_failed,
}
