"""POST /webhooks/razorpay/: signature, storage once, processing by the job."""

from datetime import timedelta

import pytest
from django.urls import reverse

from commerce.models import Order, Product, WebhookEvent
from commerce.services.subscriptions import process_due_subscriptions
from commerce.services.webhooks import signature_for, signature_is_valid
from jobs.models import JobRun, Notification
from jobs.runner import run_job_now
from tests.commerce.conftest import TODAY
from tests.commerce.webhook_payloads import charged_event, failed_event, signed

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_secret"
URL = "/webhooks/razorpay/"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.COMMERCE_RAZORPAY_WEBHOOK_SECRET = SECRET


def post(client, body: bytes, signature: str | None, event_id: str | None = "evt_1"):
    headers = {}
    if signature is not None:
        headers["HTTP_X_RAZORPAY_SIGNATURE"] = signature
    if event_id is not None:
        headers["HTTP_X_RAZORPAY_EVENT_ID"] = event_id
    return client.post(URL, data=body, content_type="application/json", **headers)


def process_stored_events() -> list[JobRun]:
    """Run the queued processing runs here (the e2e test does it on the cluster)."""
    runs = []
    for event_id in WebhookEvent.objects.order_by("pk").values_list("pk", flat=True):
        runs.append(run_job_now("commerce.process_webhook_event", kwargs={"event_id": event_id}))
    return runs


def test_signature__known_answer():
    body = b'{"event":"payment.failed","payload":{}}'
    expected = "85edc51a6599244d96c3b08bd55da8fe2e571de66036637e24bdd771c98caffa"  # openssl dgst
    assert signature_for(body, "whsec_known_answer") == expected
    assert signature_is_valid(body, expected, "whsec_known_answer")
    assert not signature_is_valid(body, expected.upper().replace("8", "9"), "whsec_known_answer")
    assert not signature_is_valid(body, "é" * 64, "whsec_known_answer")  # no TypeError
    assert not signature_is_valid(body, expected, "")


def test_url_is_the_documented_one():
    assert reverse("razorpay_webhook") == URL


def test_valid_signature__stored_once_processing_queued_200(client, subscription_factory):
    body, signature = signed(
        charged_event(provider_subscription_id="sub_A", billing_date=TODAY, payment_id="pay_1"),
        SECRET,
    )

    response = post(client, body, signature)

    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "event": "evt_1"}
    event = WebhookEvent.objects.get()
    assert (event.event_type, event.outcome) == ("subscription.charged", "pending")
    run = JobRun.objects.get(job="commerce.process_webhook_event")
    assert run.kwargs == {"event_id": event.pk} and run.status == "queued"


@pytest.mark.parametrize("signature", [None, "", "0" * 64, "not-hex-é"])
def test_bad_or_missing_signature__400_nothing_stored(client, signature):
    body, _ = signed(failed_event(provider_subscription_id="sub_A", payment_id="p"), SECRET)
    response = post(client, body, signature)
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists() and not JobRun.objects.exists()


def test_forged_body__signature_of_another_body__400(client):
    genuine, signature = signed(failed_event(provider_subscription_id="s", payment_id="p1"), SECRET)
    forged = genuine.replace(b"p1", b"p2")
    assert post(client, forged, signature).status_code == 400
    assert not WebhookEvent.objects.exists()


def test_signed_with_another_secret__400(client):
    body, signature = signed(failed_event(provider_subscription_id="s", payment_id="p"), "other")
    assert post(client, body, signature).status_code == 400


def test_replay__200_nothing_done_twice(client, subscription_factory, customer_factory):
    subscription_factory(provider_subscription_id="sub_A")
    body, signature = signed(failed_event(provider_subscription_id="sub_A", payment_id="p"), SECRET)

    first = post(client, body, signature)
    replay = post(client, body, signature)
    process_stored_events()
    process_stored_events()  # the admin's "process again" as well

    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.json()["status"] == "duplicate"
    assert WebhookEvent.objects.count() == 1
    assert JobRun.objects.filter(job="commerce.process_webhook_event", trigger="chain").count() == 1
    assert Notification.objects.filter(template__endswith="payment_failed").count() == 1


def test_no_event_id_header__the_body_names_the_event(client):
    body, signature = signed(failed_event(provider_subscription_id="s", payment_id="p"), SECRET)
    post(client, body, signature, event_id=None)
    post(client, body, signature, event_id=None)
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().event_id.startswith("body:")


def test_not_configured__503(client, settings):
    settings.COMMERCE_RAZORPAY_WEBHOOK_SECRET = ""
    body, signature = signed(failed_event(provider_subscription_id="s", payment_id="p"), "")
    assert post(client, body, signature).status_code == 503
    assert not WebhookEvent.objects.exists()


def test_get__405(client):
    assert client.get(URL).status_code == 405


def test_signed_but_not_an_event__400(client):
    body = b"[1, 2]"
    assert post(client, body, signature_for(body, SECRET)).status_code == 400


def test_charged_before_the_daily_job__one_paid_order_job_skips_it(
    client, frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=5)
    sub = subscription_factory(product=product, provider_subscription_id="sub_A", quantity=2)
    body, signature = signed(
        charged_event(provider_subscription_id="sub_A", billing_date=TODAY, payment_id="pay_9"),
        SECRET,
    )
    post(client, body, signature)
    (run,) = process_stored_events()

    daily = process_due_subscriptions()

    assert run.status == "succeeded" and run.result["order_created"] is True
    order = Order.objects.get()
    assert (order.status, order.provider_payment_id, order.delivery_date) == (
        "paid",
        "pay_9",
        TODAY,
    )
    assert (daily["processed"], daily["orders_created"]) == (0, 0)  # date already moved on
    sub.refresh_from_db()
    assert sub.next_delivery_date == TODAY + timedelta(days=7)
    assert Product.objects.get(pk=product.pk).stock_quantity == 3
    assert WebhookEvent.objects.get().outcome == "processed"
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert confirmations.count() == 1


def test_daily_job_before_the_charge__the_order_is_marked_paid_not_doubled(
    client, frozen_now, subscription_factory, product_factory
):
    product = product_factory(stock=5)
    subscription_factory(product=product, provider_subscription_id="sub_A")
    process_due_subscriptions()
    body, signature = signed(
        charged_event(provider_subscription_id="sub_A", billing_date=TODAY, payment_id="pay_9"),
        SECRET,
    )
    post(client, body, signature)

    (run,) = process_stored_events()

    assert run.result["order_created"] is False and run.result["marked_paid"] is True
    order = Order.objects.get()
    assert (order.status, order.provider_payment_id) == ("paid", "pay_9")
    assert Product.objects.get(pk=product.pk).stock_quantity == 4


def test_charged_unknown_subscription__failed_with_reason_flagged(client, frozen_now):
    body, signature = signed(
        charged_event(provider_subscription_id="sub_X", billing_date=TODAY, payment_id="p"), SECRET
    )
    post(client, body, signature)

    (run,) = process_stored_events()

    event = WebhookEvent.objects.get()
    assert event.outcome == "failed" and "sub_X" in event.detail
    assert run.needs_attention and not Order.objects.exists()


def test_charged_out_of_stock__failed_nothing_made(
    client, frozen_now, subscription_factory, product_factory
):
    subscription_factory(product=product_factory(stock=0), provider_subscription_id="sub_A")
    body, signature = signed(
        charged_event(provider_subscription_id="sub_A", billing_date=TODAY, payment_id="p"), SECRET
    )
    post(client, body, signature)
    process_stored_events()
    event = WebhookEvent.objects.get()
    assert event.outcome == "failed" and "restock" in event.detail
    assert not Order.objects.exists()


def test_payment_failed__one_email_with_amount_and_reason(
    client, subscription_factory, customer_factory, product_factory
):
    subscription_factory(
        provider_subscription_id="sub_A",
        customer=customer_factory(email="cy@example.com", name="Cy"),
        product=product_factory(name="Oat milk"),
    )
    body, signature = signed(
        failed_event(provider_subscription_id="sub_A", payment_id="pay_F"), SECRET
    )
    post(client, body, signature)
    process_stored_events()
    note = Notification.objects.get()
    assert (note.recipient, note.subject) == (
        "cy@example.com",
        "Your payment of INR 1499.00 failed",
    )
    assert "for Oat milk failed: Card declined by the bank." in note.body


def test_other_types__stored_and_ignored(client):
    body, signature = signed({"event": "refund.created", "payload": {}}, SECRET)
    post(client, body, signature)
    process_stored_events()
    assert WebhookEvent.objects.get().outcome == "ignored"


@pytest.mark.django_db(transaction=True)
def test_over_real_http__signed_200_forged_400(live_server, subscription_factory):
    import requests

    body, signature = signed(failed_event(provider_subscription_id="sub_L", payment_id="p"), SECRET)
    url = live_server.url + URL
    headers = {"Content-Type": "application/json", "X-Razorpay-Event-Id": "evt_live"}

    forged = requests.post(
        url, data=body + b" ", headers={**headers, "X-Razorpay-Signature": signature}, timeout=10
    )
    accepted = requests.post(
        url, data=body, headers={**headers, "X-Razorpay-Signature": signature}, timeout=10
    )

    assert (forged.status_code, accepted.status_code) == (400, 200)
    assert WebhookEvent.objects.get().event_id == "evt_live"
