"""commerce.process_due_subscriptions: due deliveries become orders, stock never oversold."""

from datetime import date, timedelta

import pytest
from django.template import TemplateSyntaxError

from commerce.models import AuditLog, Order, OrderLine, Product, Subscription
from commerce.services.dates import next_delivery_date
from commerce.services.subscriptions import COUNTS, process_due_subscriptions
from jobs.models import Notification
from jobs.runner import run_job_now
from tests.commerce.conftest import TODAY

pytestmark = pytest.mark.django_db


def test_due_subscription__becomes_order_with_stock_taken_date_moved_and_confirmation(
    frozen_now, subscription_factory, product_factory, customer_factory
):
    product = product_factory(stock=10, name="Coffee beans")
    customer = customer_factory(email="ann@example.com", phone="+15550001", name="Ann")
    sub = subscription_factory(product=product, customer=customer, quantity=3, price="30.00")

    result = process_due_subscriptions()

    assert result["processed"] == 1 and result["orders_created"] == 1
    order = Order.objects.get()
    assert (order.subscription_id, order.delivery_date, order.status) == (sub.pk, TODAY, "pending")
    assert str(order.total) == "30.00"
    line = OrderLine.objects.get()
    assert (line.product_id, line.quantity, str(line.unit_price)) == (product.pk, 3, "10.00")
    product.refresh_from_db()
    sub.refresh_from_db()
    assert product.stock_quantity == 7
    assert sub.next_delivery_date == TODAY + timedelta(days=7)
    notes = Notification.objects.order_by("channel")
    assert [(n.channel, n.recipient) for n in notes] == [
        ("email", "ann@example.com"),
        ("sms", "+15550001"),
    ]
    assert notes[0].subject == f"Your order #{order.pk} is confirmed"
    assert "3 x Coffee beans, total 30.00" in notes[0].body
    assert notes[1].body == (
        f"Order #{order.pk} confirmed: 3 x Coffee beans for {TODAY:%Y-%m-%d}, total 30.00."
    )
    audit = AuditLog.objects.get()
    assert (audit.action, audit.object_ref) == ("order.created", f"order:{order.pk}")


def test_rerun_the_same_day__changes_nothing(frozen_now, subscription_factory):
    subscription_factory()
    process_due_subscriptions()

    again = process_due_subscriptions()

    assert (again["processed"], again["orders_created"]) == (0, 0)
    assert Order.objects.count() == 1 and Notification.objects.count() == 1  # email only


def test_not_due_paused_and_cancelled__left_alone(frozen_now, subscription_factory):
    subscription_factory(next_delivery_date=TODAY + timedelta(days=1))
    subscription_factory(status="paused")
    subscription_factory(status="cancelled")

    result = process_due_subscriptions()

    assert result["processed"] == 0 and not Order.objects.exists()


def test_late_by_less_than_one_period__made_once_late(frozen_now, subscription_factory):
    sub = subscription_factory(next_delivery_date=TODAY - timedelta(days=3))  # weekly

    result = process_due_subscriptions()

    assert Order.objects.get().delivery_date == TODAY - timedelta(days=3)
    assert (result["orders_created"], result["deliveries_skipped"]) == (1, 0)
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY + timedelta(days=4)
    assert not Notification.objects.filter(template__endswith="subscription_skipped").exists()


def test_missed_by_two_weeks__one_late_order_older_skipped_and_told_once(
    frozen_now, subscription_factory, customer_factory
):
    sub = subscription_factory(
        next_delivery_date=TODAY - timedelta(days=15),
        customer=customer_factory(email="eve@example.com", name="Eve"),
    )

    result = process_due_subscriptions(chunk_size=1)
    again = process_due_subscriptions(chunk_size=1)

    # Feb 15 and Feb 22 are skipped; Mar 1 (one day late) is made, once.
    assert list(Order.objects.values_list("delivery_date", flat=True)) == [
        TODAY - timedelta(days=1)
    ]
    assert (result["orders_created"], result["deliveries_skipped"]) == (1, 2)
    assert result["subscriptions_caught_up"] == 1
    assert (again["processed"], again["orders_created"]) == (0, 0)
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY + timedelta(days=6)
    told = Notification.objects.get(template__endswith="subscription_skipped")
    assert told.recipient == "eve@example.com"
    assert told.subject == f"We skipped 2 missed {sub.product.name} deliveries"
    assert "missed 2 deliveries since 2026-02-15" in told.body
    assert "Your next delivery is on 2026-03-01." in told.body
    skipped = AuditLog.objects.get(action="subscription.deliveries_skipped")
    assert skipped.object_ref == f"subscription:{sub.pk}"
    assert skipped.details["skipped"] == 2 and skipped.details["missed_from"] == "2026-02-15"


def test_typed_0001_01_01__one_order_one_confirmation_not_ninety_seven(
    frozen_now, subscription_factory, product_factory, customer_factory
):
    product = product_factory(stock=100)
    subscription_factory(
        product=product,
        next_delivery_date=date(1, 1, 1),
        customer=customer_factory(email="f@example.com", phone="+15550002"),
    )

    result = process_due_subscriptions()

    assert result["orders_created"] == 1 and Order.objects.get().delivery_date == TODAY
    assert Product.objects.get(pk=product.pk).stock_quantity == 99
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert sorted(confirmations.values_list("channel", flat=True)) == ["email", "sms"]
    assert Notification.objects.filter(template__endswith="subscription_skipped").count() == 1


def test_restocked_after_three_weeks__one_order_not_four(
    frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=0)
    sub = subscription_factory(product=product, next_delivery_date=TODAY - timedelta(days=21))
    process_due_subscriptions(as_of=TODAY - timedelta(days=21))
    process_due_subscriptions(as_of=TODAY - timedelta(days=14))
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY - timedelta(days=21)  # stays while out of stock
    Product.objects.filter(pk=product.pk).update(stock_quantity=10)

    result = process_due_subscriptions()

    assert list(Order.objects.values_list("delivery_date", flat=True)) == [TODAY]
    assert (result["orders_created"], result["deliveries_skipped"]) == (1, 3)
    assert Product.objects.get(pk=product.pk).stock_quantity == 9
    out_of_stock = Notification.objects.filter(template__endswith="subscription_out_of_stock")
    # told once per delivery that could not be made: Feb 9 (twice late) and Feb 16
    assert sorted(out_of_stock.values_list("dedup_key", flat=True)) == [
        f"subscription_out_of_stock:{sub.pk}:20260209",
        f"subscription_out_of_stock:{sub.pk}:20260216",
    ]


def test_dry_run__agrees_with_the_run_on_every_count(
    frozen_now, subscription_factory, product_factory
):
    short = product_factory(stock=2, name="Rare tea")
    plenty = product_factory(stock=50)
    subscription_factory(product=short, next_delivery_date=TODAY - timedelta(days=40))
    subscription_factory(product=short, next_delivery_date=TODAY - timedelta(days=2))
    subscription_factory(product=short, next_delivery_date=TODAY)  # the third: out of stock
    subscription_factory(product=plenty, next_delivery_date=date(1, 1, 1), frequency="monthly")
    subscription_factory(
        product=plenty, next_delivery_date=TODAY - timedelta(days=20), frequency="biweekly"
    )
    subscription_factory(product=plenty, status="paused", next_delivery_date=date(2000, 1, 1))
    ordered = subscription_factory(product=plenty)
    Order.objects.create(
        customer=ordered.customer, subscription=ordered, delivery_date=TODAY, subtotal=1, total=1
    )

    preview = process_due_subscriptions(dry_run=True)
    result = process_due_subscriptions(chunk_size=2)

    keys = (*COUNTS, "out_of_stock_products", "out_of_stock_subscription_ids")
    assert {k: preview[k] for k in keys} == {k: result[k] for k in keys}
    assert (result["processed"], result["orders_created"], result["out_of_stock"]) == (6, 4, 1)
    assert result["already_ordered"] == 1 and result["subscriptions_caught_up"] == 3
    assert result["out_of_stock_products"] == {f"{short.sku} Rare tea": 1}


def test_out_of_stock_run__flagged_naming_the_products_and_counts(
    frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=1, name="Oolong")
    for _ in range(3):
        subscription_factory(product=product)

    run = run_job_now("commerce.process_due_subscriptions")

    assert run.status == "succeeded" and run.needs_attention
    assert run.attention_reason == (
        f"2 deliveries out of stock: {product.sku} Oolong (2); restock, the next run makes them"
    )
    assert run.result["out_of_stock_products"] == {f"{product.sku} Oolong": 2}


def test_all_in_stock__run_not_flagged(frozen_now, subscription_factory):
    subscription_factory()
    run = run_job_now("commerce.process_due_subscriptions")
    assert run.status == "succeeded" and not run.needs_attention


def test_stock_for_3_of_5__three_orders_earliest_first_two_out_of_stock_told_once(
    frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=3)
    subs = [
        subscription_factory(product=product, next_delivery_date=TODAY - timedelta(days=i))
        for i in range(5)
    ]
    first = process_due_subscriptions(chunk_size=2)
    second = process_due_subscriptions(chunk_size=2)

    product.refresh_from_db()
    assert product.stock_quantity == 0
    earliest = {s.pk for s in subs[2:]}  # due 4, 3 and 2 days ago
    assert set(Order.objects.values_list("subscription_id", flat=True)) == earliest
    assert (first["orders_created"], first["out_of_stock"]) == (3, 2)
    assert sorted(first["out_of_stock_subscription_ids"]) == sorted(s.pk for s in subs[:2])
    assert (second["orders_created"], second["out_of_stock"]) == (0, 2)
    short = Notification.objects.filter(template__endswith="subscription_out_of_stock")
    assert short.count() == 2  # once per delivery date, whatever the number of runs
    for sub in subs[:2]:
        sub.refresh_from_db()
        assert sub.next_delivery_date <= TODAY  # stays due


def test_restocked__out_of_stock_delivery_is_made_next_run(
    frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=0)
    sub = subscription_factory(product=product, quantity=2)
    assert process_due_subscriptions()["out_of_stock"] == 1
    Product.objects.filter(pk=product.pk).update(stock_quantity=5)

    result = process_due_subscriptions()

    assert result["orders_created"] == 1
    assert Order.objects.get().delivery_date == TODAY
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY + timedelta(days=7)


def test_order_already_made_by_the_webhook__date_moves_on_no_second_order_no_stock(
    frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=5)
    sub = subscription_factory(product=product)
    Order.objects.create(
        customer=sub.customer,
        subscription=sub,
        delivery_date=TODAY,
        subtotal=1,
        total=1,
        status="paid",
    )

    result = process_due_subscriptions()

    assert (result["orders_created"], result["already_ordered"]) == (0, 1)
    assert Order.objects.count() == 1
    product.refresh_from_db()
    sub.refresh_from_db()
    assert product.stock_quantity == 5
    assert sub.next_delivery_date == TODAY + timedelta(days=7)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (date(2026, 1, 31), [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]),
        (date(2028, 1, 31), [date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30)]),
        (date(2027, 12, 30), [date(2028, 1, 30), date(2028, 2, 29), date(2028, 3, 30)]),
        (date(2026, 2, 28), [date(2026, 3, 28), date(2026, 4, 28), date(2026, 5, 28)]),
    ],
)
def test_monthly__keeps_the_anchor_day_across_month_ends_and_leap_years(
    subscription_factory, start, expected
):
    sub = subscription_factory(frequency="monthly", next_delivery_date=start)

    for day in [start, *expected[:-1]]:  # the daily run on each delivery day
        process_due_subscriptions(as_of=day)

    made = sorted(Order.objects.filter(subscription=sub).values_list("delivery_date", flat=True))
    sub.refresh_from_db()
    assert made == [start, *expected[:-1]]
    assert sub.next_delivery_date == expected[-1]
    # the rule Python callers ask for (resume, admin, webhook) is the same SQL function
    assert next_delivery_date(start, frequency="monthly", anchor_day=start.day) == expected[0]


def test_biweekly__moves_14_days(frozen_now, subscription_factory):
    sub = subscription_factory(frequency="biweekly")
    process_due_subscriptions()
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY + timedelta(days=14)


def test_dry_run__counts_and_writes_nothing(frozen_now, subscription_factory, product_factory):
    product = product_factory(stock=1)
    subscription_factory(product=product)
    subscription_factory(product=product)

    result = process_due_subscriptions(dry_run=True)

    assert (result["processed"], result["orders_created"], result["out_of_stock"]) == (2, 1, 1)
    assert not Order.objects.exists() and not Notification.objects.exists()
    assert Subscription.objects.filter(next_delivery_date=TODAY).count() == 2


def test_customer_without_phone_or_email__order_made_nobody_told(
    frozen_now, subscription_factory, customer_factory
):
    subscription_factory(customer=customer_factory(email="", phone=""))
    assert process_due_subscriptions()["orders_created"] == 1
    assert not Notification.objects.exists()


def override_template(settings, tmp_path, name: str, text: str) -> None:
    """A project template that takes precedence over the app's (as an operator would add)."""
    path = tmp_path / "commerce" / "notifications" / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    engines = [dict(e) for e in settings.TEMPLATES]
    for engine in engines:
        engine["DIRS"] = [tmp_path, *engine.get("DIRS", [])]
    settings.TEMPLATES = engines


def test_customized_template_with_a_filter__used_for_the_confirmation(
    frozen_now, subscription_factory, customer_factory, settings, tmp_path
):
    override_template(
        settings,
        tmp_path,
        "order_confirmation.sms.txt",
        "Order #{{ order_id }}: {{ product_name|upper }}\n",
    )
    sub = subscription_factory(customer=customer_factory(phone="+1555"))

    process_due_subscriptions()

    order = Order.objects.get(subscription=sub)
    sms = Notification.objects.get(channel="sms")
    assert sms.body == f"Order #{order.pk}: {sub.product.name.upper()}"
    assert sms.dedup_key == f"order_confirmation:{order.pk}:sms"
    assert Notification.objects.filter(channel="email").count() == 1


def test_confirmation_that_cannot_render__no_order_without_it(
    frozen_now, subscription_factory, product_factory, settings, tmp_path
):
    override_template(settings, tmp_path, "order_confirmation.subject.txt", "{% if %}\n")
    product = product_factory(stock=5)
    sub = subscription_factory(product=product)

    with pytest.raises(TemplateSyntaxError):
        process_due_subscriptions()

    assert not Order.objects.exists() and not Notification.objects.exists()
    product.refresh_from_db()
    sub.refresh_from_db()
    assert (product.stock_quantity, sub.next_delivery_date) == (5, TODAY)
    assert not AuditLog.objects.exists()
