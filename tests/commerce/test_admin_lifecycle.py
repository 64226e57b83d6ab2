"""Admin: resume follows the catch-up rule, the form refuses a date the job would skip,
cancelled is final, unpaid orders are found; every change checked against permissions."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from commerce.health import check_unpaid_orders
from commerce.models import AuditLog, Order, Subscription
from commerce.services.dates import store_today
from commerce.services.subscriptions import process_due_subscriptions
from jobs.models import Notification
from tests.admin_helpers import post_action, staff_client
from tests.commerce.test_admin import CHANGE, ORDERS, SUBS, VIEW

pytestmark = pytest.mark.django_db


def change_url(sub: Subscription) -> str:
    return reverse("admin:commerce_subscription_change", args=[sub.pk])


def form_data(sub: Subscription, **changes) -> dict:
    data = {
        "customer": sub.customer_id,
        "product": sub.product_id,
        "quantity": sub.quantity,
        "frequency": sub.frequency,
        "next_delivery_date": sub.next_delivery_date.isoformat(),
        "price_per_delivery": str(sub.price_per_delivery),
        "provider_subscription_id": sub.provider_subscription_id,
    }
    return {**data, **changes}


def test_resume_after_ten_weeks__one_order_next_date_ahead_customer_told_once(
    client, subscription_factory, customer_factory
):
    today = store_today()
    sub = subscription_factory(
        status="paused",
        next_delivery_date=today - timedelta(weeks=10),
        customer=customer_factory(email="ida@example.com"),
    )
    staff_client(client, "op", VIEW + CHANGE)

    post_action(client, SUBS, "resume", sub.pk)
    first = process_due_subscriptions()
    second = process_due_subscriptions()

    assert (first["orders_created"], second["orders_created"]) == (1, 0)
    assert Order.objects.get().delivery_date == today
    sub.refresh_from_db()
    assert (sub.status, sub.next_delivery_date) == ("active", today + timedelta(days=7))
    told = Notification.objects.get(template__endswith="subscription_skipped")
    assert told.recipient == "ida@example.com" and "missed 10 deliveries" in told.body
    skipped = AuditLog.objects.get(action="subscription.deliveries_skipped")
    assert (skipped.actor, skipped.details["skipped"]) == ("op", 10)


def test_change_form__refuses_a_date_late_by_a_period_or_more(
    client, subscription_factory, frozen_now
):
    today = store_today()  # each post reads it again: the clock stands still
    sub = subscription_factory(next_delivery_date=today + timedelta(days=3))
    staff_client(client, "op", VIEW + CHANGE)

    refused = client.post(change_url(sub), form_data(sub, next_delivery_date="0001-01-01"))
    week_late = client.post(
        change_url(sub), form_data(sub, next_delivery_date=str(today - timedelta(days=7)))
    )
    accepted = client.post(
        change_url(sub), form_data(sub, next_delivery_date=str(today - timedelta(days=6)))
    )

    assert refused.status_code == 200 and b"late by one weekly period or more" in refused.content
    assert week_late.status_code == 200
    assert accepted.status_code == 302
    sub.refresh_from_db()
    assert sub.next_delivery_date == today - timedelta(days=6)


def test_change_form__refuses_a_date_more_than_a_year_ahead(
    client, subscription_factory, frozen_now
):
    """2062 typed for 2026: an active subscription that no run, reminder or check would
    ever touch again; the customer simply stops getting deliveries."""
    today = store_today()
    sub = subscription_factory(next_delivery_date=today + timedelta(days=3))
    staff_client(client, "op", VIEW + CHANGE)

    typo = client.post(change_url(sub), form_data(sub, next_delivery_date="2062-03-02"))
    far = client.post(change_url(sub), form_data(sub, next_delivery_date="9999-12-31"))
    year = client.post(
        change_url(sub), form_data(sub, next_delivery_date=str(today + timedelta(days=366)))
    )

    assert typo.status_code == 200 and b"more than a year ahead" in typo.content
    assert far.status_code == 200
    assert year.status_code == 302
    sub.refresh_from_db()
    assert sub.next_delivery_date == today + timedelta(days=366)


def test_change_form__status_not_editable_view_only_staff_cannot_save(client, subscription_factory):
    sub = subscription_factory(next_delivery_date=store_today() + timedelta(days=3))
    staff_client(client, "viewer", VIEW)

    response = client.post(change_url(sub), form_data(sub, quantity=9, status="cancelled"))

    assert response.status_code == 403
    sub.refresh_from_db()
    assert (sub.quantity, sub.status) == (1, "active")


def test_cancelled__final_in_the_form_and_the_actions(client, subscription_factory):
    sub = subscription_factory(status="cancelled", next_delivery_date=date(2030, 1, 1))
    staff_client(client, "op", VIEW + CHANGE)

    page = client.get(change_url(sub))
    posted = client.post(change_url(sub), form_data(sub, quantity=5, status="active"))
    post_action(client, SUBS, "resume", sub.pk)
    post_action(client, SUBS, "pause", sub.pk)
    post_action(client, SUBS, "cancel", sub.pk, confirm=True)

    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert posted.status_code == 403
    sub.refresh_from_db()
    assert (sub.status, sub.quantity) == ("cancelled", 1)
    assert not AuditLog.objects.exists()


def test_awaiting_payment_filter__pending_orders_past_the_grace_period(
    client, subscription_factory, settings
):
    settings.COMMERCE_UNPAID_GRACE_DAYS = 3
    sub = subscription_factory()
    old = timezone.now() - timedelta(days=4)
    rows = {
        "old_pending": ("pending", old, date(2026, 1, 1)),
        "new_pending": ("pending", timezone.now(), date(2026, 1, 8)),
        "old_paid": ("paid", old, date(2026, 1, 15)),
    }
    orders = {
        name: Order.objects.create(
            customer=sub.customer,
            subscription=sub,
            delivery_date=day,
            status=status,
            created_at=created,
            subtotal=Decimal(1),
            total=Decimal(1),
        )
        for name, (status, created, day) in rows.items()
    }
    staff_client(client, "viewer", VIEW)

    page = client.get(ORDERS + "?payment=awaiting")

    assert page.status_code == 200
    shown = set(page.context["cl"].result_list.values_list("pk", flat=True))
    assert shown == {orders["old_pending"].pk}

    check = check_unpaid_orders()
    assert (check.ok, check.warning) == (False, True)
    assert check.detail.startswith("1 order(s) unpaid for more than 3 day(s)")


def test_resume_from_year_one__notice_keyed_as_the_daily_job_keys_it(
    client, subscription_factory, customer_factory
):
    """strftime's %Y does not pad years below 1000; both paths use YYYYMMDD, so the
    restart's notice and the daily job's notice for one missed date are one message."""
    sub = subscription_factory(
        status="paused",
        next_delivery_date=date(1, 1, 1),
        frequency="monthly",
        customer=customer_factory(email="yr@example.com"),
    )
    staff_client(client, "op", VIEW + CHANGE)

    post_action(client, SUBS, "resume", sub.pk)

    told = Notification.objects.get(template__endswith="subscription_skipped")
    assert told.dedup_key == f"subscription_skipped:{sub.pk}:00010101"


@pytest.mark.parametrize(
    ("frequency", "changes", "first", "then"),
    [
        # a monthly delivery moved from the month's end to the 15th stays on the 15th
        ("monthly", {"next_delivery_date": "2026-03-15"}, date(2026, 3, 15), date(2026, 4, 15)),
        # a weekly subscription made monthly keeps the day its next delivery is on
        (
            "weekly",
            {"next_delivery_date": "2026-03-17", "frequency": "monthly"},
            date(2026, 3, 17),
            date(2026, 4, 17),
        ),
    ],
)
def test_change_form__a_moved_monthly_date_is_the_new_day_of_the_month(
    client, frozen_now, subscription_factory, frequency, changes, first, then
):
    sub = subscription_factory(frequency=frequency, next_delivery_date=date(2026, 3, 31))
    assert sub.anchor_day == 31
    staff_client(client, "op", VIEW + CHANGE)

    response = client.post(change_url(sub), form_data(sub, **changes))
    assert response.status_code == 302
    with time_machine.travel(first, tick=False):
        assert process_due_subscriptions()["orders_created"] == 1

    assert Order.objects.get().delivery_date == first
    sub.refresh_from_db()
    assert sub.next_delivery_date == then
