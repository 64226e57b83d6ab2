"""Admin: actions behind permissions (view-only, run-only, no-permission staff), confirmations,
audit rows, and no token hash or webhook secret on any page."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from commerce.models import AuditLog, ExpiringToken, Order, Subscription, WebhookEvent
from jobs.models import JobRun, Notification
from tests.admin_helpers import post_action, run_page, staff_client
from tests.commerce.conftest import NOW

pytestmark = pytest.mark.django_db

SUBS = reverse("admin:commerce_subscription_changelist")
ORDERS = reverse("admin:commerce_order_changelist")
EVENTS = reverse("admin:commerce_webhookevent_changelist")
VIEW = [
    ("commerce", "view_subscription"),
    ("commerce", "view_order"),
    ("commerce", "view_webhookevent"),
    ("commerce", "view_expiringtoken"),
    ("commerce", "view_auditlog"),
]
CHANGE = [
    ("commerce", "change_subscription"),
    ("commerce", "change_order"),
    ("commerce", "change_webhookevent"),
]
RUN = [("jobs", "run_job"), ("jobs", "view_jobrun")]


@pytest.fixture
def order(subscription_factory, customer_factory):
    sub = subscription_factory(customer=customer_factory(email="d@example.com", phone="+1555"))
    return Order.objects.create(
        customer=sub.customer,
        subscription=sub,
        delivery_date=NOW.date(),
        subtotal=5,
        total=5,
        status="paid",
    )


@pytest.mark.parametrize(
    ("perms", "allowed"),
    [(VIEW, False), (VIEW + RUN, False), (VIEW + CHANGE, False), (VIEW + CHANGE + RUN, True)],
)
def test_process_now__needs_run_and_change(client, subscription_factory, perms, allowed):
    sub = subscription_factory()
    staff_client(client, "op", perms)

    response = post_action(client, SUBS, "process_now", sub.pk)

    runs = JobRun.objects.filter(job="commerce.process_due_subscriptions")
    if allowed:
        run = runs.get()
        assert response.url == run_page(run)
        assert run.kwargs == {"subscription_ids": [sub.pk]} and run.triggered_by == "op"
    else:
        assert not runs.exists()


@pytest.mark.parametrize(
    ("perms", "allowed"), [(VIEW, False), (VIEW + RUN, False), (VIEW + CHANGE, True)]
)
def test_pause_resume__need_change_and_are_audited(client, subscription_factory, perms, allowed):
    sub = subscription_factory()
    staff_client(client, "op", perms)

    post_action(client, SUBS, "pause", sub.pk)

    sub.refresh_from_db()
    assert sub.status == ("paused" if allowed else "active")
    if allowed:
        audit = AuditLog.objects.get()
        assert (audit.actor, audit.action, audit.object_ref) == (
            "op",
            "subscription.paused",
            f"subscription:{sub.pk}",
        )
        post_action(client, SUBS, "resume", sub.pk)
        sub.refresh_from_db()
        assert sub.status == "active"
        assert AuditLog.objects.filter(action="subscription.resumed").count() == 1


def test_cancel__asks_first_then_cancels(client, subscription_factory):
    sub = subscription_factory()
    staff_client(client, "op", VIEW + CHANGE)

    page = post_action(client, SUBS, "cancel", sub.pk)
    assert page.status_code == 200 and b"Cancel these subscriptions?" in page.content
    assert Subscription.objects.get(pk=sub.pk).status == "active"

    post_action(client, SUBS, "cancel", sub.pk, confirm=True)
    assert Subscription.objects.get(pk=sub.pk).status == "cancelled"


def test_mark_shipped__confirmation_then_shipped_told_once_audited(client, order):
    staff_client(client, "op", VIEW + CHANGE)

    page = post_action(client, ORDERS, "mark_shipped", order.pk)
    assert b"Mark these orders shipped?" in page.content
    assert Order.objects.get(pk=order.pk).status == "paid"

    post_action(client, ORDERS, "mark_shipped", order.pk, confirm=True)
    post_action(client, ORDERS, "mark_shipped", order.pk, confirm=True)  # already shipped

    order.refresh_from_db()
    assert order.status == "shipped" and order.shipped_at is not None
    shipped = Notification.objects.filter(template__endswith="order_shipped")
    assert sorted(shipped.values_list("channel", flat=True)) == ["email", "sms"]
    assert AuditLog.objects.filter(action="order.shipped").count() == 1


def test_mark_shipped__in_the_evening_in_los_angeles__the_store_date_in_the_message(
    client, settings, order
):
    settings.COMMERCE_TIME_ZONE = "America/Los_Angeles"
    staff_client(client, "op", VIEW + CHANGE)

    # 18:30 on Mar 1 in Los Angeles is already 02:30 on Mar 2 in UTC.
    with time_machine.travel(datetime(2026, 3, 2, 2, 30, tzinfo=UTC), tick=False):
        post_action(client, ORDERS, "mark_shipped", order.pk, confirm=True)

    for note in Notification.objects.filter(template__endswith="order_shipped"):
        assert "shipped on 2026-03-01" in note.body, note.body


def test_mark_shipped__view_only_cannot(client, order):
    staff_client(client, "viewer", VIEW + RUN)
    post_action(client, ORDERS, "mark_shipped", order.pk, confirm=True)
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.parametrize(
    ("perms", "allowed"), [(VIEW, False), (VIEW + RUN, False), (VIEW + CHANGE + RUN, True)]
)
def test_webhook_process_again__needs_run_and_change(client, perms, allowed):
    event = WebhookEvent.objects.create(
        event_id="evt_9", event_type="refund.created", payload={"a": 1}
    )
    staff_client(client, "op", perms)

    post_action(client, EVENTS, "process_again", event.pk)

    runs = JobRun.objects.filter(
        job="commerce.process_webhook_event", kwargs={"event_id": event.pk}
    )
    assert runs.exists() == allowed


def test_no_permission_staff__pages_forbidden(client):
    staff_client(client, "nobody", [])
    for url in (SUBS, ORDERS, EVENTS, reverse("admin:commerce_auditlog_changelist")):
        assert client.get(url).status_code == 403


def test_token_hash_never_rendered_and_read_only(client, settings):
    settings.COMMERCE_RAZORPAY_WEBHOOK_SECRET = "whsec_never_shown"
    token = ExpiringToken.objects.create(kind="password_reset", token_hash="f" * 64, expires_at=NOW)
    staff_client(client, "viewer", VIEW + CHANGE + RUN)
    pages = [
        reverse("admin:commerce_expiringtoken_changelist"),
        reverse("admin:commerce_expiringtoken_change", args=[token.pk]),
        EVENTS,
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200
        assert b"f" * 64 not in response.content and b"whsec_never_shown" not in response.content
    assert (
        client.get(reverse("admin:commerce_expiringtoken_changelist") + "?token_hash=x").status_code
        != 500
    )


def test_audit_log_is_read_only(client):
    entry = AuditLog.objects.create(actor="a", action="order.created", object_ref="order:1")
    staff_client(
        client, "op", VIEW + [("commerce", "change_auditlog"), ("commerce", "delete_auditlog")]
    )
    page = client.get(reverse("admin:commerce_auditlog_change", args=[entry.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    client.post(reverse("admin:commerce_auditlog_delete", args=[entry.pk]), {"post": "yes"})
    assert AuditLog.objects.filter(pk=entry.pk).exists()
