"""The daily job's SQL-rendered outbox rows are exactly what the Python renderer writes."""

from datetime import timedelta

import pytest

from commerce.models import Order
from commerce.services.notifications import ORDER_CONFIRMATION, OUT_OF_STOCK, RENEWAL_REMINDER
from commerce.services.reminders import send_subscription_renewal_reminders
from commerce.services.subscriptions import process_due_subscriptions
from jobs.models import Notification
from jobs.services.outbox import OutgoingNotification, render_notification
from tests.commerce.conftest import TODAY

pytestmark = pytest.mark.django_db

#: Ampersands, quotes, a tab, no-break and ideographic spaces: escaping and whitespace rules.
NAME = "Tom & Jerry's\t\u00a0caf\u00e9\u3000"
PRODUCT = 'Beans "dark" <roast> & co'


def python_text(template: str, channel: str, context: dict) -> tuple[str, str]:
    item = OutgoingNotification(
        channel=channel, recipient="x", template=template, dedup_key="k", context=context
    )
    return render_notification(item)


def test_confirmation_and_out_of_stock__sql_text_equals_python_text(
    frozen_now, subscription_factory, product_factory, customer_factory
):
    customer = customer_factory(name=NAME, phone="+1555")
    made = subscription_factory(
        customer=customer, product=product_factory(name=PRODUCT), quantity=2, price="7.50"
    )
    short = subscription_factory(
        customer=customer_factory(name=NAME, email="", phone="+1666"),
        product=product_factory(name=PRODUCT, stock=0),
    )

    process_due_subscriptions()

    order = Order.objects.get(subscription=made)
    context = {
        "customer_name": NAME,
        "order_id": order.pk,
        "product_name": PRODUCT,
        "quantity": 2,
        "total": "7.50",
        "delivery_date": TODAY.isoformat(),
    }
    for channel in ("email", "sms"):
        row = Notification.objects.get(template=ORDER_CONFIRMATION, channel=channel)
        assert (row.subject, row.body) == python_text(ORDER_CONFIRMATION, channel, context)
    row = Notification.objects.get(template=OUT_OF_STOCK)
    assert row.channel == "sms" and row.dedup_key.startswith(
        f"subscription_out_of_stock:{short.pk}:"
    )
    short_context = {
        "customer_name": NAME,
        "product_name": PRODUCT,
        "quantity": 1,
        "delivery_date": TODAY.isoformat(),
    }
    assert (row.subject, row.body) == python_text(OUT_OF_STOCK, "sms", short_context)


def test_reminder__sql_text_equals_python_text(
    frozen_now, subscription_factory, product_factory, customer_factory
):
    tomorrow = TODAY + timedelta(days=1)
    subscription_factory(
        customer=customer_factory(name=NAME),
        product=product_factory(name=PRODUCT),
        quantity=3,
        price="12.00",
        next_delivery_date=tomorrow,
    )
    send_subscription_renewal_reminders()
    row = Notification.objects.get(template=RENEWAL_REMINDER)
    context = {
        "customer_name": NAME,
        "product_name": PRODUCT,
        "quantity": 3,
        "amount": "12.00",
        "delivery_date": tomorrow.isoformat(),
    }
    assert (row.subject, row.body) == python_text(RENEWAL_REMINDER, "email", context)
