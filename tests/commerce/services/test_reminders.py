"""Renewal reminders: subscriptions due tomorrow, one email each per delivery date."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from commerce.services.reminders import send_subscription_renewal_reminders
from commerce.services.subscriptions import process_due_subscriptions
from jobs.models import Notification
from jobs.outbox.notifications import deliver_due_notifications
from jobs.registry import get_job
from tests.commerce.conftest import TODAY

pytestmark = pytest.mark.django_db

TOMORROW = TODAY + timedelta(days=1)


def test_due_tomorrow__one_email_with_product_quantity_amount(
    frozen_now, subscription_factory, product_factory, customer_factory
):
    sub = subscription_factory(
        product=product_factory(name="Green tea"),
        customer=customer_factory(email="bo@example.com", name="Bo"),
        quantity=2,
        price="18.50",
        next_delivery_date=TOMORROW,
    )
    subscription_factory(next_delivery_date=TODAY)
    subscription_factory(next_delivery_date=TOMORROW + timedelta(days=1))
    subscription_factory(next_delivery_date=TOMORROW, status="paused")

    result = send_subscription_renewal_reminders(chunk_size=1)

    assert (result["subscriptions"], result["reminders_queued"]) == (1, 1)
    note = Notification.objects.get()
    assert (note.channel, note.recipient) == ("email", "bo@example.com")
    assert note.subject == "Your Green tea delivery is tomorrow"
    assert f"2 x Green tea is due tomorrow, {TOMORROW:%Y-%m-%d}" in note.body
    assert "The amount of 18.50 will be charged." in note.body
    assert note.dedup_key == f"subscription_reminder:{sub.pk}:{TOMORROW:%Y%m%d}"


def test_second_run__queues_nothing(frozen_now, subscription_factory):
    for _ in range(3):
        subscription_factory(next_delivery_date=TOMORROW)
    send_subscription_renewal_reminders()

    again = send_subscription_renewal_reminders()

    assert (again["subscriptions"], again["reminders_queued"]) == (3, 0)
    assert Notification.objects.count() == 3


def test_no_email__no_reminder(frozen_now, subscription_factory, customer_factory):
    subscription_factory(
        next_delivery_date=TOMORROW, customer=customer_factory(email="", phone="+1")
    )
    assert send_subscription_renewal_reminders()["reminders_queued"] == 0
    assert not Notification.objects.exists()


def test_store_in_new_york__reminded_24_hours_before_the_run_that_makes_the_delivery(
    frozen_now, settings, subscription_factory
):
    settings.COMMERCE_TIME_ZONE = "America/New_York"
    # 00:00 UTC on Mar 2 is 19:00 on Mar 1 in New York: the store's tomorrow is Mar 2.
    reminded = subscription_factory(next_delivery_date=TODAY)
    subscription_factory(next_delivery_date=TOMORROW)

    result = send_subscription_renewal_reminders()
    run = process_due_subscriptions()  # the order run at the same moment: New York's Mar 1

    assert get_job("commerce.send_subscription_renewal_reminders").cron == (
        get_job("commerce.process_due_subscriptions").cron
    )
    assert (result["due_date"], result["reminders_queued"]) == (TODAY.isoformat(), 1)
    assert Notification.objects.get().dedup_key == f"subscription_reminder:{reminded.pk}:20260302"
    assert (run["as_of"], run["processed"]) == ("2026-03-01", 0)  # made at the next run


def test_reminder_text__offers_what_the_customer_can_do(frozen_now, subscription_factory):
    subscription_factory(next_delivery_date=TOMORROW)
    send_subscription_renewal_reminders()
    body = Notification.objects.get().body
    assert "pause" not in body
    assert "reply to this email before then" in body


def test_outbox_down_until_the_delivery_day__the_reminder_is_dead_too_late_never_sent(
    frozen_now, settings, subscription_factory, mailoutbox
):
    settings.COMMERCE_TIME_ZONE = "Europe/Berlin"
    # The 00:00 UTC run is 01:00 in Berlin on Mar 2: it reminds Mar 3's deliveries.
    subscription_factory(next_delivery_date=TOMORROW)
    send_subscription_renewal_reminders()
    note = Notification.objects.get()
    # Mar 3 begins in Berlin at 23:00 UTC on Mar 2: "tomorrow" is no longer true then.
    assert note.deliver_before == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 3, 3, 0, 30, tzinfo=UTC), tick=False):
        result = deliver_due_notifications()

    assert (result["sent"], result["too_late"]) == (0, 1)
    assert mailoutbox == []
    note.refresh_from_db()
    assert (note.status, note.dead_reason) == ("dead", "too late")


def test_outbox_back_before_the_delivery_day__the_reminder_is_sent(
    frozen_now, subscription_factory, mailoutbox
):
    subscription_factory(next_delivery_date=TOMORROW)
    send_subscription_renewal_reminders()

    with time_machine.travel(datetime(2026, 3, 2, 23, 59, tzinfo=UTC), tick=False):
        result = deliver_due_notifications()

    assert (result["sent"], result["too_late"]) == (1, 0)
    assert "due tomorrow" in mailoutbox[0].body
