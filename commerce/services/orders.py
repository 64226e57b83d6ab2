"""Order state changes made by operators, each with its audit row.

Set-based: one UPDATE per action, narrowed to the rows the change applies to, then
the audit rows and notifications of exactly the rows changed, in the same transaction.
"""

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from commerce.conf import commerce_settings
from commerce.models import Order, OrderLine
from commerce.services import audit
from commerce.services.dates import store_date
from commerce.services.notifications import ORDER_SHIPPED
from jobs.outbox.notifications import OutgoingNotification, queue_notifications

SHIPPABLE = (Order.Status.PENDING, Order.Status.PAID)


def awaiting_payment_q() -> Q:
    """Orders still pending COMMERCE_UNPAID_GRACE_DAYS after they were made (a charge that
    never came: the admin filter and the /health/ warning)."""
    grace = timedelta(days=int(commerce_settings.UNPAID_GRACE_DAYS))
    return Q(status=Order.Status.PENDING, created_at__lt=timezone.now() - grace)


def lock_ids(model: type[Model], ids: list[int], statuses: Iterable[str]) -> list[int]:
    """Lock the rows of `ids` still in one of `statuses`, in id order; their ids.

    In the caller's transaction: the lock holds the status until the update commits.
    """
    return list(
        model.objects.select_for_update()
        .filter(pk__in=ids, status__in=statuses)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def mark_orders_shipped(*, order_ids: list[int], actor: str) -> dict[str, Any]:
    """Pending or paid orders become shipped; the customer gets email and SMS, once."""
    now = timezone.now()
    with transaction.atomic():
        ids = lock_ids(Order, order_ids, SHIPPABLE)
        Order.objects.filter(pk__in=ids).update(status=Order.Status.SHIPPED, shipped_at=now)
        audit.record(actor=actor, action="order.shipped", refs=[f"order:{pk}" for pk in ids])
        queued = queue_notifications(_shipped_notifications(ids, now=now))
    return {"shipped": len(ids), "order_ids": ids, "notifications_queued": queued}


def _shipped_notifications(ids: list[int], *, now) -> Iterator[OutgoingNotification]:
    items: dict[int, list[str]] = {}
    for order_id, quantity, name in OrderLine.objects.filter(order_id__in=ids).values_list(
        "order_id", "quantity", "product__name"
    ):
        items.setdefault(order_id, []).append(f"{quantity} x {name}")
    for order in Order.objects.filter(pk__in=ids).select_related("customer"):
        context = {
            "customer_name": order.customer.name,
            "order_id": order.pk,
            "items": ", ".join(items.get(order.pk, [])),
            "shipped_date": store_date(now).isoformat(),  # the store's date, as delivery dates
        }
        for channel, recipient in (("email", order.customer.email), ("sms", order.customer.phone)):
            if recipient:
                yield OutgoingNotification(
                    channel=channel,
                    recipient=recipient,
                    template=ORDER_SHIPPED,
                    dedup_key=f"order_shipped:{order.pk}:{channel}",
                    context=context,
                )
