"""Razorpay's subscription lifecycle as a storefront meets it: the charge in the customer's
timezone, halted and cancelled cards, pending payments, malformed but signed events."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from commerce.models import AuditLog, Order, Product, Subscription, WebhookEvent
from commerce.services.orders import mark_orders_shipped
from commerce.services.subscriptions import process_due_subscriptions
from jobs.health.checks import check_recent_failures
from jobs.models import JobRun, Notification
from jobs.runner import run_job_now
from tests.commerce.conftest import NOW, TODAY
from tests.commerce.test_webhook import SECRET, post, process_stored_events
from tests.commerce.webhook_payloads import charged_event, failed_event, signed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.COMMERCE_RAZORPAY_WEBHOOK_SECRET = SECRET


def lifecycle_event(kind: str, provider_id: str, **entity) -> dict:
    return {
        "entity": "event",
        "event": f"subscription.{kind}",
        "payload": {"subscription": {"entity": {"id": provider_id, **entity}}},
    }


def deliver(client, payload: dict, event_id: str) -> JobRun:
    body, signature = signed(payload, SECRET)
    assert post(client, body, signature, event_id=event_id).status_code == 200
    return process_stored_events()[-1]


def test_charge_at_ist_midnight_after_the_job__one_paid_order_stock_taken_once(
    client, settings, subscription_factory, product_factory
):
    settings.COMMERCE_TIME_ZONE = "Asia/Kolkata"
    product = product_factory(stock=10)
    delivery = date(2026, 3, 2)
    sub = subscription_factory(
        product=product, provider_subscription_id="sub_IN", next_delivery_date=delivery
    )
    ist_midnight = datetime(2026, 3, 1, 18, 30, tzinfo=UTC)  # 2026-03-02 00:00 in India
    with time_machine.travel(ist_midnight + timedelta(minutes=1), tick=False):
        assert process_due_subscriptions()["orders_created"] == 1  # the job: IST's today
        payload = charged_event(
            provider_subscription_id="sub_IN", billing_date=delivery, payment_id="pay_IN"
        )
        entity = payload["payload"]["subscription"]["entity"]
        entity["current_start"] = int(ist_midnight.timestamp())
        entity["current_end"] = int((ist_midnight + timedelta(days=7)).timestamp())
        run = deliver(client, payload, "evt_ist")

    assert run.result["order_created"] is False and run.result["marked_paid"] is True
    order = Order.objects.get()
    assert (order.delivery_date, order.status, order.provider_payment_id) == (
        delivery,
        "paid",
        "pay_IN",
    )
    assert Product.objects.get(pk=product.pk).stock_quantity == 9
    sub.refresh_from_db()
    assert sub.next_delivery_date == delivery + timedelta(days=7)


def test_charge_before_the_job__made_paid_by_the_daily_statement_job_then_skips_it(
    client, frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=5)
    sub = subscription_factory(product=product, provider_subscription_id="sub_A")
    run = deliver(
        client,
        charged_event(provider_subscription_id="sub_A", billing_date=TODAY, payment_id="pay_1"),
        "evt_c1",
    )

    daily = process_due_subscriptions()

    assert run.result["order_created"] is True and daily["processed"] == 0
    order = Order.objects.get()
    assert (order.status, order.paid_at is not None, order.lines.count()) == ("paid", True, 1)
    created = AuditLog.objects.get(action="order.created")
    assert created.details["payment_id"] == "pay_1"
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY + timedelta(days=7)


def test_halted__no_more_orders_until_active_again(client, frozen_now, subscription_factory):
    sub = subscription_factory(provider_subscription_id="sub_H")

    run = deliver(client, lifecycle_event("halted", "sub_H"), "evt_h")
    result = process_due_subscriptions()

    assert run.result["status"] == "halted"
    assert (result["processed"], Order.objects.count()) == (0, 0)
    sub.refresh_from_db()
    assert sub.status == "halted"
    assert AuditLog.objects.filter(action="subscription.halted").count() == 1


def test_halted_ten_weeks_then_activated__one_order_next_date_ahead_told_once(
    client, frozen_now, subscription_factory, customer_factory
):
    sub = subscription_factory(
        provider_subscription_id="sub_B",
        next_delivery_date=TODAY - timedelta(weeks=10),
        status="halted",
        customer=customer_factory(email="gus@example.com"),
    )

    deliver(client, lifecycle_event("activated", "sub_B"), "evt_act")
    result = process_due_subscriptions()

    assert result["orders_created"] == 1 and Order.objects.get().delivery_date == TODAY
    sub.refresh_from_db()
    assert (sub.status, sub.next_delivery_date) == ("active", TODAY + timedelta(days=7))
    told = Notification.objects.filter(template__endswith="subscription_skipped")
    assert told.count() == 1 and "missed 10 deliveries" in told.get().body


@pytest.mark.parametrize("kind", ["cancelled", "completed"])
def test_cancelled_or_completed_at_the_provider__final_nothing_brings_it_back(
    client, frozen_now, subscription_factory, kind
):
    sub = subscription_factory(provider_subscription_id="sub_C")

    deliver(client, lifecycle_event(kind, "sub_C"), "evt_end")
    resumed = deliver(client, lifecycle_event("resumed", "sub_C"), "evt_resume")
    deliver(
        client,
        charged_event(provider_subscription_id="sub_C", billing_date=TODAY, payment_id="pay_C"),
        "evt_charge",
    )

    sub.refresh_from_db()
    assert sub.status == kind
    assert resumed.result["outcome"] == "ignored"
    event = WebhookEvent.objects.get(event_id="evt_charge")
    assert event.outcome == "failed" and "refund payment pay_C" in event.detail
    assert process_due_subscriptions()["processed"] == 0 and not Order.objects.exists()


@pytest.mark.parametrize("kind", ["cancelled", "completed"])
def test_out_of_order__the_last_cycles_charge_after_its_end__pays_the_order_made_no_refund(
    client, frozen_now, subscription_factory, kind
):
    """The provider charges the last cycle at 00:05, then completes (or the customer
    cancels) at 00:06; the two events reach us the other way round."""
    sub = subscription_factory(provider_subscription_id="sub_L")
    assert process_due_subscriptions()["orders_created"] == 1  # the cycle's order, pending
    ended = lifecycle_event(kind, "sub_L")
    ended["created_at"] = int(NOW.timestamp()) + 360
    charged = charged_event(provider_subscription_id="sub_L", billing_date=TODAY, payment_id="pL")
    charged["created_at"] = int(NOW.timestamp()) + 300

    deliver(client, ended, "evt_end")
    run = deliver(client, charged, "evt_charge")

    event = WebhookEvent.objects.get(event_id="evt_charge")
    assert (event.outcome, run.needs_attention) == ("processed", False), event.detail
    order = Order.objects.get()
    assert (order.status, order.provider_payment_id) == ("paid", "pL")
    sub.refresh_from_db()
    assert sub.status == kind


def test_paused_and_resumed__follow_the_provider(client, frozen_now, subscription_factory):
    sub = subscription_factory(provider_subscription_id="sub_P")

    deliver(client, lifecycle_event("paused", "sub_P"), "evt_p")
    assert process_due_subscriptions()["processed"] == 0
    deliver(client, lifecycle_event("resumed", "sub_P"), "evt_r")

    sub.refresh_from_db()
    assert sub.status == "active"
    assert process_due_subscriptions()["orders_created"] == 1


def test_pending__past_due_still_delivered_customer_told_once(
    client, frozen_now, subscription_factory, customer_factory
):
    sub = subscription_factory(
        provider_subscription_id="sub_D", customer=customer_factory(email="hal@example.com")
    )
    start = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())

    deliver(client, lifecycle_event("pending", "sub_D", current_start=start), "evt_d1")
    again = deliver(client, lifecycle_event("pending", "sub_D", current_start=start), "evt_d2")

    sub.refresh_from_db()
    assert sub.status == "past_due" and again.result["outcome"] == "ignored"
    told = Notification.objects.get(template__endswith="subscription_past_due")
    assert told.recipient == "hal@example.com" and "try your card again" in told.body
    assert process_due_subscriptions()["orders_created"] == 1  # deliveries continue
    deliver(
        client,
        charged_event(provider_subscription_id="sub_D", billing_date=TODAY, payment_id="pay_D"),
        "evt_d3",
    )
    sub.refresh_from_db()
    assert sub.status == "active" and Order.objects.get().status == "paid"


def test_payment_failed_for_a_payment_that_paid_an_order__recorded_not_emailed(
    client, frozen_now, subscription_factory
):
    subscription_factory(provider_subscription_id="sub_E")
    deliver(
        client,
        charged_event(provider_subscription_id="sub_E", billing_date=TODAY, payment_id="pay_E"),
        "evt_e1",
    )

    run = deliver(client, failed_event(provider_subscription_id="sub_E", payment_id="pay_E"), "e2")

    event = WebhookEvent.objects.get(event_id="e2")
    assert event.outcome == "ignored" and "payment pay_E paid order" in event.detail
    assert run.result["emailed"] is False
    assert not Notification.objects.filter(template__endswith="payment_failed").exists()


def _charged(**entity) -> dict:
    payload = charged_event(provider_subscription_id="sub_M", billing_date=TODAY, payment_id="p")
    payload["payload"]["subscription"]["entity"].update(entity)
    return payload


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_charged(current_start=10**18), "current_start 1000000000000000000 is not a time"),
        (_charged(current_start=1e18), "current_start 1000000000000000000 is not a time"),
        (_charged(current_start=-5), "current_start -5 is not a time"),
        (
            {**failed_event(provider_subscription_id="sub_M", payment_id="p"), "payload": [1]},
            "payload is not an object",
        ),
        (
            {
                "event": "payment.failed",
                "payload": {"payment": {"entity": {"id": "p", "amount": 10**400}}},
            },
            "payload.payment.entity.amount 10000000000000000000... is not an amount",
        ),
        (
            {"event": "subscription.halted", "payload": {"subscription": {"entity": "x"}}},
            "payload.subscription.entity is not an object",
        ),
    ],
)
def test_signed_but_malformed__failed_at_once_with_reason_not_retried_health_not_red(
    client, frozen_now, subscription_factory, payload, reason
):
    subscription_factory(provider_subscription_id="sub_M")

    run = deliver(client, payload, "evt_bad")

    event = WebhookEvent.objects.get()
    assert event.outcome == "failed" and reason in event.detail
    assert run.status == "succeeded" and run.needs_attention
    runs = JobRun.objects.filter(job="commerce.process_webhook_event")
    assert not runs.filter(status="failed").exists() and not runs.filter(trigger="retry").exists()
    assert check_recent_failures().ok
    assert not Order.objects.exists()


@pytest.mark.parametrize("event_id", ["évt_1", "evt\u00a0x", "evt\x01", "e" * 129])
def test_event_id_not_printable_ascii__400_nothing_stored(client, event_id):
    body, signature = signed(failed_event(provider_subscription_id="s", payment_id="p"), SECRET)
    response = post(client, body, signature, event_id=event_id)
    assert response.status_code == 400 and "printable ASCII" in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_updated_and_authenticated__recorded_no_state_change(
    client, frozen_now, subscription_factory
):
    sub = subscription_factory(provider_subscription_id="sub_U")
    deliver(client, lifecycle_event("updated", "sub_U"), "evt_u")
    deliver(client, lifecycle_event("authenticated", "sub_U"), "evt_a")
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"processed"}
    assert Subscription.objects.get(pk=sub.pk).status == "active"


def test_out_of_order__a_late_pending_after_the_charge_leaves_it_active_customer_not_told(
    client, frozen_now, subscription_factory, customer_factory
):
    """Razorpay does not keep its events in order and retries one for 24 hours: the card
    failed at 01:00, the retry paid at 05:00, and the 01:00 `pending` arrives last."""
    sub = subscription_factory(
        provider_subscription_id="sub_O", customer=customer_factory(email="ola@example.com")
    )
    failed_at, paid_at = int(NOW.timestamp()) + 3600, int(NOW.timestamp()) + 5 * 3600
    charged = charged_event(provider_subscription_id="sub_O", billing_date=TODAY, payment_id="p2")
    charged["created_at"] = paid_at
    pending = lifecycle_event("pending", "sub_O", current_start=int(NOW.timestamp()))
    pending["created_at"] = failed_at

    deliver(client, charged, "evt_paid")
    late = deliver(client, pending, "evt_failed")

    sub.refresh_from_db()
    assert sub.status == "active"
    assert late.result["outcome"] == "ignored"
    assert "older" in WebhookEvent.objects.get(event_id="evt_failed").detail
    assert not Notification.objects.filter(template__endswith="subscription_past_due").exists()
    assert not AuditLog.objects.filter(action="subscription.past_due").exists()


def test_out_of_order__a_late_halted_after_activated_keeps_delivering(
    client, frozen_now, subscription_factory
):
    """Halted at 01:00, the customer's new card activated it at 09:00; halted arrives last."""
    sub = subscription_factory(provider_subscription_id="sub_Q", status="past_due")
    activated = lifecycle_event("activated", "sub_Q")
    activated["created_at"] = int(NOW.timestamp()) + 9 * 3600
    halted = lifecycle_event("halted", "sub_Q")
    halted["created_at"] = int(NOW.timestamp()) + 3600

    deliver(client, activated, "evt_on")
    deliver(client, halted, "evt_off")

    sub.refresh_from_db()
    assert sub.status == "active"
    assert process_due_subscriptions()["orders_created"] == 1


def test_out_of_order__a_late_charge_pays_its_order_but_does_not_undo_a_newer_pending(
    client, frozen_now, subscription_factory
):
    """The 01:00 charge paid this cycle; the 05:00 `pending` (the next charge failed) came
    first: the order is paid, the subscription stays past due."""
    sub = subscription_factory(provider_subscription_id="sub_R")
    pending = lifecycle_event("pending", "sub_R", current_start=int(NOW.timestamp()))
    pending["created_at"] = int(NOW.timestamp()) + 5 * 3600
    charged = charged_event(provider_subscription_id="sub_R", billing_date=TODAY, payment_id="p1")
    charged["created_at"] = int(NOW.timestamp()) + 3600

    deliver(client, pending, "evt_pending")
    deliver(client, charged, "evt_charge")

    sub.refresh_from_db()
    assert sub.status == "past_due"
    assert Order.objects.get().status == "paid"


def test_charge_after_the_order_shipped__payment_recorded_a_late_failure_not_emailed(
    client, frozen_now, subscription_factory, customer_factory
):
    """The warehouse ships the 00:00 order at 05:00; the provider charges at 06:00."""
    subscription_factory(
        provider_subscription_id="sub_S", customer=customer_factory(email="sam@example.com")
    )
    process_due_subscriptions()
    order = Order.objects.get()
    mark_orders_shipped(order_ids=[order.pk], actor="warehouse")

    deliver(
        client,
        charged_event(provider_subscription_id="sub_S", billing_date=TODAY, payment_id="pay_S"),
        "evt_s1",
    )
    late = deliver(client, failed_event(provider_subscription_id="sub_S", payment_id="pay_S"), "s2")

    order.refresh_from_db()
    assert (order.status, order.provider_payment_id) == ("shipped", "pay_S")
    assert order.paid_at is not None
    assert AuditLog.objects.filter(action="order.paid", object_ref=f"order:{order.pk}").exists()
    assert late.result["emailed"] is False
    assert not Notification.objects.filter(template__endswith="payment_failed").exists()


def test_second_charge_for_a_paid_cycle__failed_naming_the_payment_to_refund(
    client, frozen_now, subscription_factory
):
    subscription_factory(provider_subscription_id="sub_T")
    first = charged_event(provider_subscription_id="sub_T", billing_date=TODAY, payment_id="pay_1")
    second = charged_event(provider_subscription_id="sub_T", billing_date=TODAY, payment_id="pay_2")

    deliver(client, first, "evt_t1")
    run = deliver(client, second, "evt_t2")

    order = Order.objects.get()
    assert (order.status, order.provider_payment_id) == ("paid", "pay_1")
    event = WebhookEvent.objects.get(event_id="evt_t2")
    assert event.outcome == "failed" and "refund payment pay_2" in event.detail
    assert run.needs_attention
    # the same charge processed again (admin "Process again") is not a second charge
    again = run_job_now("commerce.process_webhook_event", kwargs={"event_id": stored_pk("evt_t1")})
    assert again.result["outcome"] == "processed" and not again.needs_attention


def stored_pk(event_id: str) -> int:
    return WebhookEvent.objects.get(event_id=event_id).pk
