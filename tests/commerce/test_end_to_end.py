"""On real `subscriptions` qcluster processes: the daily job twice at once, a webhook's event."""

import pytest

from commerce.models import Order, Product, WebhookEvent
from devkit.waiting import wait_for_run, wait_until
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job
from tests.commerce.conftest import TODAY
from tests.commerce.webhook_payloads import charged_event, signed
from tests.race import RowLocks

# quiet_scheduler: a cluster up at 00:00 UTC would also run the daily job for the real day.
pytestmark = pytest.mark.e2e


def test_two_clusters_two_runs_at_once__stock_for_3_of_5__3_orders(
    qcluster, quiet_scheduler, subscription_factory, product_factory
):
    product = product_factory(stock=3)
    for _ in range(5):
        subscription_factory(product=product)
    runs = [
        enqueue_job(
            "commerce.process_due_subscriptions",
            kwargs={"date": TODAY.isoformat()},
            trigger="command",
        )
        for _ in range(2)
    ]
    # The product's row lock holds the first run inside its chunk, its single-flight lock
    # taken, until the second run has met that lock and been skipped: they overlapped.
    with RowLocks("commerce_product", [product.pk]):
        qcluster.start(["subscriptions", "subscriptions"])
        skipped = wait_until(
            lambda: JobRun.objects.filter(pk__in=[r.pk for r in runs], status="skipped").first(),
            timeout_seconds=90,
            what="one run to be skipped while the other holds the lock",
        )
        holder = JobRun.objects.exclude(pk=skipped.pk).get(pk__in=[r.pk for r in runs])
        assert holder.status == "running"

    finished = [wait_for_run(r.pk, timeout_seconds=90) for r in runs]

    assert sorted(r.status for r in finished) == ["skipped", "succeeded"]
    assert f"held by run:{holder.pk}" in skipped.result["reason"]
    made = sum((r.result or {}).get("orders_created", 0) for r in finished)
    assert made == Order.objects.count() == 3
    assert Product.objects.get(pk=product.pk).stock_quantity == 0
    assert Notification.objects.filter(template__endswith="subscription_out_of_stock").count() == 2
    assert all(r.task_id for r in finished if r.status == "succeeded")


def test_webhook_event__processed_on_the_subscriptions_cluster_with_the_daily_job(
    qcluster, quiet_scheduler, client, settings, subscription_factory, product_factory
):
    settings.COMMERCE_RAZORPAY_WEBHOOK_SECRET = "whsec_e2e"
    product = product_factory(stock=10)
    subscription_factory(product=product, provider_subscription_id="sub_E2E")
    body, signature = signed(
        charged_event(provider_subscription_id="sub_E2E", billing_date=TODAY, payment_id="pay_E"),
        "whsec_e2e",
    )
    daily = enqueue_job(
        "commerce.process_due_subscriptions", kwargs={"date": TODAY.isoformat()}, trigger="command"
    )
    response = client.post(
        "/webhooks/razorpay/",
        data=body,
        content_type="application/json",
        HTTP_X_RAZORPAY_SIGNATURE=signature,
        HTTP_X_RAZORPAY_EVENT_ID="evt_E2E",
    )
    assert response.status_code == 200
    qcluster.start(["subscriptions"])

    event_run = wait_until(
        lambda: JobRun.objects.filter(
            job="commerce.process_webhook_event", status__in=["succeeded", "failed"]
        ).first(),
        timeout_seconds=90,
        what="the webhook event's run",
    )
    wait_for_run(daily.pk, timeout_seconds=90)

    assert event_run.status == "succeeded"
    order = Order.objects.get()  # one order, whichever path came first
    assert (order.status, order.provider_payment_id) == ("paid", "pay_E")
    assert WebhookEvent.objects.get().outcome == "processed"
    assert Product.objects.get(pk=product.pk).stock_quantity == 9
