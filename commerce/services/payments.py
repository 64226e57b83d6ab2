"""The provider's charge of a subscription becomes its order, or marks the existing one paid.

The daily job and the webhook may both reach one delivery, in either order or at the
same moment. Both lock the subscription row first, then the product (the same order,
so they never deadlock), and both meet at the one-order-per-delivery key: whichever
comes second finds the order. Never two orders, never stock taken twice.
"""

from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from commerce.exceptions import OutOfStock, UnknownSubscription
from commerce.models import Order, OrderLine, Product, Subscription
from commerce.services import audit
from commerce.services.dates import next_delivery_date
from commerce.services.notifications import ORDER_CONFIRMATION, confirmation_key
from jobs.services.outbox import OutgoingNotification, queue_notifications


def charge_subscription(
    *, provider_subscription_id: str, billing_date: date, payment_id: str, actor: str
) -> dict[str, Any]:
    """Create the paid order of `billing_date`, or mark the daily job's order paid."""
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update()
            .select_related("customer")
            .filter(provider_subscription_id=provider_subscription_id)
            .first()
        )
        if sub is None:
            raise UnknownSubscription(
                f"no subscription has provider id {provider_subscription_id!r}"
            )
        now = timezone.now()
        order = Order.objects.filter(subscription=sub, delivery_date=billing_date).first()
        if order is not None:
            marked = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
                status=Order.Status.PAID, paid_at=now, provider_payment_id=payment_id[:64]
            )
            if marked:
                audit.record(
                    actor=actor,
                    action="order.paid",
                    refs=[f"order:{order.pk}"],
                    details={"payment_id": payment_id},
                )
            return {"order_id": order.pk, "order_created": False, "marked_paid": bool(marked)}
        product = Product.objects.select_for_update().get(pk=sub.product_id)
        if product.stock_quantity < sub.quantity:
            raise OutOfStock(
                f"{product.sku} has {product.stock_quantity} in stock, subscription {sub.pk}"
                f" needs {sub.quantity} for {billing_date}: restock (or refund payment"
                f" {payment_id}), then process the event again"
            )
        order = _create_paid_order(sub, product, billing_date=billing_date, payment_id=payment_id)
        if sub.next_delivery_date <= billing_date:
            sub.next_delivery_date = next_delivery_date(
                billing_date, frequency=sub.frequency, anchor_day=sub.anchor_day
            )
            sub.updated_at = now
            sub.save(update_fields=["next_delivery_date", "updated_at"])
        audit.record(
            actor=actor,
            action="order.created",
            refs=[f"order:{order.pk}"],
            details={
                "subscription_id": sub.pk,
                "delivery_date": billing_date.isoformat(),
                "payment_id": payment_id,
            },
        )
        queue_order_confirmation(sub, product, order)
    return {"order_id": order.pk, "order_created": True, "marked_paid": True}


def _create_paid_order(
    sub: Subscription, product: Product, *, billing_date: date, payment_id: str
) -> Order:
    now = timezone.now()
    return create_order(
        sub,
        product,
        delivery_date=billing_date,
        status=Order.Status.PAID,
        provider_payment_id=payment_id[:64],
        created_at=now,
        paid_at=now,
    )


def create_order(
    sub: Subscription, product: Product, *, delivery_date: date, **order_fields: Any
) -> Order:
    """One delivery of `sub` as an order with its line, the product's stock taken.

    Row by row, for one order (a charge); the daily job writes its orders set-based
    (commerce.sql). Call with the product locked and its stock checked.
    """
    order = Order.objects.create(
        customer_id=sub.customer_id,
        subscription=sub,
        delivery_date=delivery_date,
        subtotal=sub.price_per_delivery,
        total=sub.price_per_delivery,
        **order_fields,
    )
    OrderLine.objects.create(
        order=order,
        product=product,
        quantity=sub.quantity,
        unit_price=round(sub.price_per_delivery / sub.quantity, 2),
        line_total=sub.price_per_delivery,
    )
    Product.objects.filter(pk=product.pk).update(stock_quantity=F("stock_quantity") - sub.quantity)
    return order


def queue_order_confirmation(sub: Subscription, product: Product, order: Order) -> None:
    """The same rows the daily job's statement writes (same context, same dedup keys);
    also what bench/subscriptions.py's seed-shaped task queues."""
    context = {
        "customer_name": sub.customer.name,
        "order_id": order.pk,
        "product_name": product.name,
        "quantity": sub.quantity,
        "total": str(order.total),
        "delivery_date": order.delivery_date.isoformat(),
    }
    channels = [("email", sub.customer.email), ("sms", sub.customer.phone)]
    queue_notifications(
        OutgoingNotification(
            channel=channel,
            recipient=recipient,
            template=ORDER_CONFIRMATION,
            dedup_key=confirmation_key(order.pk, channel),
            context=context,
        )
        for channel, recipient in channels
        if recipient
    )
