"""Subscription status changes, by staff (admin actions) and by the provider (webhook).

One table says which change is allowed from which status; cancelled and completed are in
no "from" set, so they are final whoever asks. A restart moves the next date by the daily
job's catch-up rule and tells the customer with the daily job's key, so it never tells
them again.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from commerce.models import DELIVERED_STATUSES, Customer, Product, Subscription
from commerce.services import audit
from commerce.services.dates import day_key, store_today
from commerce.services.notifications import DELIVERIES_SKIPPED, PAST_DUE
from commerce.services.orders import lock_ids
from jobs.outbox.notifications import OutgoingNotification, queue_notification, queue_notifications
from jobs.sql import fetch

S = Subscription.Status


@dataclass(frozen=True)
class Change:
    """One allowed status change."""

    #: Statuses the change applies to; any other subscription is left alone.
    from_statuses: tuple[str, ...]
    to: str
    #: The audit action written for each subscription changed.
    action: str
    #: Deliveries start again: the next date follows the catch-up rule.
    restarts: bool = False


_NOT_FINAL = (*DELIVERED_STATUSES, S.PAUSED, S.HALTED)
#: Staff's actions and the provider's lifecycle events (Razorpay's subscription.*).
CHANGES: dict[str, Change] = {
    "pause": Change(DELIVERED_STATUSES, S.PAUSED, "subscription.paused"),
    "resume": Change((S.PAUSED,), S.ACTIVE, "subscription.resumed", restarts=True),
    "cancel": Change(_NOT_FINAL, S.CANCELLED, "subscription.cancelled"),
    "provider_pending": Change((S.ACTIVE,), S.PAST_DUE, "subscription.past_due"),
    "provider_halted": Change((*DELIVERED_STATUSES, S.PAUSED), S.HALTED, "subscription.halted"),
    "provider_paused": Change((*DELIVERED_STATUSES, S.HALTED), S.PAUSED, "subscription.paused"),
    "provider_active": Change(
        (S.PAST_DUE, S.PAUSED, S.HALTED), S.ACTIVE, "subscription.resumed", restarts=True
    ),
    "provider_cancelled": Change(_NOT_FINAL, S.CANCELLED, "subscription.cancelled"),
    "provider_completed": Change(_NOT_FINAL, S.COMPLETED, "subscription.completed"),
}

#: Set the status (and, for a restart, the next date by the catch-up rule) of the locked
#: rows; returns each changed row with its old date and the deliveries skipped.
_APPLY = """
WITH old AS (
    SELECT id, next_delivery_date FROM commerce_subscription WHERE id = ANY(%(ids)s)
)
UPDATE commerce_subscription s
   SET status = %(to)s, updated_at = %(now)s,
       next_delivery_date = CASE
           WHEN %(restarts)s AND s.next_delivery_date < %(today)s
           THEN commerce_due_delivery(s.next_delivery_date, s.frequency, s.anchor_day, %(today)s)
           ELSE s.next_delivery_date END
  FROM old
 WHERE s.id = old.id
RETURNING s.id, old.next_delivery_date, s.next_delivery_date,
          commerce_deliveries_between(old.next_delivery_date, s.next_delivery_date,
                                      s.frequency, s.anchor_day)
"""


def change_subscriptions(
    *, action: str, subscription_ids: list[int], actor: str, details: dict[str, Any] | None = None
) -> list[int]:
    """Apply CHANGES[action] to the subscriptions it applies to; returns their ids."""
    change = CHANGES[action]
    with transaction.atomic():
        ids = lock_ids(Subscription, subscription_ids, change.from_statuses)
        if not ids:
            return []
        params = {"ids": ids, "to": change.to, "restarts": change.restarts}
        rows = fetch(_APPLY, {**params, "now": timezone.now(), "today": store_today()})
        audit.record(
            actor=actor,
            action=change.action,
            refs=[f"subscription:{pk}" for pk in ids],
            details={"status": str(change.to), **(details or {})},
        )
        skipped = [row for row in rows if row[3] > 0]
        if skipped:
            _record_skipped(skipped, actor=actor)
    return ids


def _record_skipped(rows: list[tuple], *, actor: str) -> None:
    """Audit rows and the customer's one notice for deliveries skipped by a restart."""
    for pk, old, new, count in rows:
        audit.record(
            actor=actor,
            action="subscription.deliveries_skipped",
            refs=[f"subscription:{pk}"],
            details={"skipped": count, "missed_from": old.isoformat(), "delivery_date": str(new)},
        )
    subs = Subscription.objects.select_related("customer", "product").in_bulk(
        [pk for pk, *_ in rows]
    )
    queue_notifications(
        _notice(
            subs[pk].customer,
            subs[pk].product,
            DELIVERIES_SKIPPED,
            f"subscription_skipped:{pk}:{day_key(old)}",
            {
                "quantity": subs[pk].quantity,
                "skipped": count,
                "missed_from": old.isoformat(),
                "delivery_date": new.isoformat(),
            },
        )
        for pk, old, new, count in rows
        if subs[pk].customer.email or subs[pk].customer.phone
    )


def _notice(
    customer: Customer, product: Product, template: str, key: str, context: dict[str, Any]
) -> OutgoingNotification:
    """Email, else SMS (as the daily job's notices): one message per key."""
    channel, recipient = ("email", customer.email) if customer.email else ("sms", customer.phone)
    return OutgoingNotification(
        channel=channel,
        recipient=recipient,
        template=template,
        dedup_key=key,
        context={"customer_name": customer.name, "product_name": product.name, **context},
    )


def tell_past_due(sub: Subscription, *, cycle: str) -> bool:
    """The customer's one notice that a charge failed and the provider retries (per cycle)."""
    customer = sub.customer
    if not (customer.email or customer.phone):
        return False
    notice = _notice(
        customer,
        sub.product,
        PAST_DUE,
        f"subscription_past_due:{sub.pk}:{cycle}",
        {"quantity": sub.quantity},
    )
    return queue_notification(notice)


def newest_provider_event(subscription_id: int, created_at: int | None) -> bool:
    """Record that the provider's event created at `created_at` (Unix seconds) is acted on;
    False, recording nothing, when a later one was acted on already: the provider does not
    keep its events in order, so this one's state is out of date. In the caller's
    transaction: the row stays locked until it commits, so two events at once are decided
    one after the other (the second's WHERE is checked again on the first's row)."""
    if created_at is None:
        return True
    at = datetime.fromtimestamp(created_at, tz=UTC)
    current = Q(provider_event_at__isnull=True) | Q(provider_event_at__lte=at)
    rows = Subscription.objects.filter(current, pk=subscription_id)
    return bool(rows.update(provider_event_at=at))
