"""The provider's charge of a subscription pays the order of the delivery its cycle covers
(the cycle in the store's local dates), made paid through the daily job's own statements
when missing. Both lock the subscription, then the product (no deadlock), and meet at
the one-order-per-delivery key: whichever comes second finds the order.
"""

from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from commerce import sql
from commerce.exceptions import OutOfStock, SecondCharge, SubscriptionEnded, UnknownSubscription
from commerce.models import FINAL_STATUSES, Order, Subscription
from commerce.services import audit
from commerce.services.dates import next_delivery_date
from commerce.services.lifecycle import newest_provider_event
from commerce.services.subscriptions import write_deliveries


def charge_subscription(
    *,
    provider_subscription_id: str,
    billing_date: date,
    payment_id: str,
    actor: str,
    cycle_end: date | None = None,
    created_at: int | None = None,
) -> dict[str, Any]:
    """Mark paid the order of the delivery in [billing_date, cycle_end), or make it paid.

    Without `cycle_end` the cycle is one period of the subscription's schedule. A cancelled
    or completed subscription gets no new order, but the order of its last cycle is paid:
    the provider's `completed` (or the customer's cancel) can reach us before the charge
    that came first. A past-due
    subscription is active again: the provider was paid, unless the charge's event
    (`created_at`) is older than one already acted on (a later charge failed).
    """
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update()
            .filter(provider_subscription_id=provider_subscription_id)
            .first()
        )
        if sub is None:
            raise UnknownSubscription(
                f"no subscription has provider id {provider_subscription_id!r}"
            )
        if cycle_end is None or cycle_end <= billing_date:
            cycle_end = next_delivery_date(
                billing_date, frequency=sub.frequency, anchor_day=sub.anchor_day
            )
        order = (
            Order.objects.filter(
                subscription=sub, delivery_date__gte=billing_date, delivery_date__lt=cycle_end
            )
            .order_by("delivery_date")
            .first()
        )
        if order is None and sub.status in FINAL_STATUSES:
            raise SubscriptionEnded(
                f"subscription {sub.pk} is {sub.status}: nothing is delivered; refund payment"
                f" {payment_id} at the provider"
            )
        if newest_provider_event(sub.pk, created_at):
            _reactivate_if_past_due(sub, actor=actor, payment_id=payment_id)
        if order is not None:
            return _mark_paid(order, payment_id=payment_id, actor=actor)
        in_cycle = billing_date <= sub.next_delivery_date < cycle_end
        deliver_on = sub.next_delivery_date if in_cycle else billing_date
        written = write_deliveries(
            sql.PICK_CHARGED,
            {
                "subscription_id": sub.pk,
                "as_of": deliver_on,
                "deliver_on": deliver_on,
                "short_products": [],
                "paid_by": payment_id[:64],
                "now": timezone.now(),
                "actor": actor,
            },
        )
        if written is None or written.counts["out_of_stock"]:
            product = ", ".join(written.short_per_product) if written else "the product"
            raise OutOfStock(
                f"{product} is out of stock for subscription {sub.pk}'s delivery of"
                f" {deliver_on}: restock (or refund payment {payment_id}), then process the"
                " event again"
            )
    return {"order_id": written.order_ids[0], "order_created": True, "marked_paid": True}


def _mark_paid(order: Order, *, payment_id: str, actor: str) -> dict[str, Any]:
    """Record the payment on the order: pending becomes paid; one shipped before the charge
    came stays shipped, with its payment (a late `payment.failed` for it is then known as
    paid). The same payment again changes nothing; another one is a second charge."""
    payment_id = payment_id[:64]
    if order.provider_payment_id and order.provider_payment_id != payment_id:
        raise SecondCharge(
            f"order {order.pk} (delivery {order.delivery_date}) was paid by payment"
            f" {order.provider_payment_id}; payment {payment_id} charged it again: refund"
            f" payment {payment_id} at the provider"
        )
    marked = Order.objects.filter(
        pk=order.pk,
        provider_payment_id="",
        status__in=(Order.Status.PENDING, Order.Status.SHIPPED),
    ).update(
        status=Case(
            When(status=Order.Status.PENDING, then=Value(Order.Status.PAID)), default=F("status")
        ),
        paid_at=timezone.now(),
        provider_payment_id=payment_id,
    )
    if marked:
        audit.record(
            actor=actor,
            action="order.paid",
            refs=[f"order:{order.pk}"],
            details={"payment_id": payment_id},
        )
    return {"order_id": order.pk, "order_created": False, "marked_paid": bool(marked)}


def _reactivate_if_past_due(sub: Subscription, *, actor: str, payment_id: str) -> None:
    if sub.status != Subscription.Status.PAST_DUE:
        return
    Subscription.objects.filter(pk=sub.pk).update(
        status=Subscription.Status.ACTIVE, updated_at=timezone.now()
    )
    audit.record(
        actor=actor,
        action="subscription.active",
        refs=[f"subscription:{sub.pk}"],
        details={"status": "active", "payment_id": payment_id, "was": "past_due"},
    )
