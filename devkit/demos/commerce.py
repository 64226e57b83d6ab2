"""`manage.py demo --only commerce`: subscriptions, a payment webhook and cart cleanup through
the real clusters and the real web endpoint.

`cluster_env` starts `manage.py runserver` on a free port (the webhook's endpoint) with a
demo webhook secret, the same secret the clusters get; `run_demo` seeds due
subscriptions (one out of stock, one monthly at a month end), queues the daily job on
the `subscriptions` cluster, sends a signed `subscription.charged`, its replay and a
forged one to the endpoint, waits for the event's run, then cleans old carts.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from commerce.models import Cart, CartLine, Customer, Order, Product, Subscription, WebhookEvent
from commerce.services.dates import store_today, store_zone
from commerce.services.webhooks import PROCESS_JOB, signature_for
from devkit.devservers import free_port
from devkit.waiting import wait_for_run, wait_until
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job

#: A demo secret: a real one from the environment is never used by the demo.
DEMO_SECRET = "whsec_demo_only"
_web: dict[str, object] = {}


def cluster_env(*, out: Callable[[str], None]) -> dict[str, str]:
    """Start the web endpoint with the demo secret; the clusters get the same secret."""
    env = {"COMMERCE_RAZORPAY_WEBHOOK_SECRET": DEMO_SECRET}
    os.environ.update(env)
    port = free_port()
    log_dir = Path(settings.BASE_DIR) / ".run" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / "demo-web.log", "ab")  # noqa: SIM115 - owned by the server process
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "runserver",
            "--noreload",
            f"127.0.0.1:{port}",
        ],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _web.update(proc=proc, url=f"http://127.0.0.1:{port}")
    out(f"web endpoint on http://127.0.0.1:{port}/webhooks/razorpay/ (log .run/logs/demo-web.log)")
    return env


def _wait_for_web(base_url: str) -> None:
    def answers() -> bool:
        try:
            requests.get(f"{base_url}/health/", timeout=1)
        except requests.ConnectionError:
            return False
        return True

    wait_until(answers, timeout_seconds=30, poll_seconds=0.2, what="the web endpoint to answer")


def _seed_carts(product: Product) -> None:
    """6 carts untouched for 40 days (2 with a line), 3 fresh ones."""
    now = timezone.now()
    old = Cart.objects.bulk_create(Cart(updated_at=now - timedelta(days=40)) for _ in range(6))
    Cart.objects.bulk_create(Cart(updated_at=now - timedelta(days=2)) for _ in range(3))
    CartLine.objects.bulk_create(CartLine(cart=cart, product=product) for cart in old[:2])
    # Adding lines moves a cart (a trigger); these were abandoned 40 days ago.
    Cart.objects.filter(pk__in=[c.pk for c in old]).update(updated_at=now - timedelta(days=40))


def _seed(*, out: Callable[[str], None]) -> dict[str, object]:
    """Due subscriptions: 20 weekly coffee, 1 out of stock, 1 monthly at a month end."""
    today = store_today()
    month_end = today.replace(day=1) - timedelta(days=1)  # last day of the previous month
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    with transaction.atomic():
        coffee, tea, milk = (
            Product.objects.create(sku=f"{sku}-{stamp}", name=name, price=price, stock_quantity=n)
            for sku, name, price, n in (
                ("COF", "Demo coffee", Decimal("12.00"), 50),
                ("TEA", "Demo tea", Decimal("8.00"), 0),  # out of stock
                ("OAT", "Demo oat milk", Decimal("3.50"), 10),
            )
        )
        customers = Customer.objects.bulk_create(
            Customer(
                name=f"Demo shopper {i}",
                email=f"shopper{i}@example.com",
                phone=f"+1555{i:07d}" if i % 2 else "",
            )
            for i in range(22)
        )
        weekly = [
            _subscription(
                c,
                coffee,
                2,
                "24.00",
                today,
                provider_subscription_id=f"sub_demo_{stamp}" if i == 0 else "",
            )
            for i, c in enumerate(customers[:20])
        ]
        short = _subscription(customers[20], tea, 1, "8.00", today)
        monthly = _subscription(
            customers[21], milk, 4, "14.00", month_end, frequency="monthly", anchor_day=31
        )
        Subscription.objects.bulk_create([*weekly, short, monthly])
        _seed_carts(coffee)
    out(
        f"seeded 20 weekly coffee subscriptions due today, 1 tea (out of stock), 1 monthly oat"
        f" milk due {month_end} (anchor day 31); 6 carts 40 days old (2 with lines), 3 fresh"
    )
    return {"today": today, "charged": weekly[0], "monthly": monthly, "short": short}


def _subscription(
    customer: Customer, product: Product, quantity: int, price: str, due: date, **extra: Any
) -> Subscription:
    """A demo subscription due on `due`: weekly and anchored on that day unless `extra` says."""
    fields = {"frequency": "weekly", "anchor_day": due.day, **extra}
    return Subscription(
        customer=customer,
        product=product,
        quantity=quantity,
        next_delivery_date=due,
        price_per_delivery=Decimal(price),
        **fields,
    )


def _run(name: str, kwargs: dict, *, out: Callable[[str], None], cluster: str) -> JobRun:
    run = enqueue_job(name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by="demo")
    out(f"queued {name} as run #{run.pk}; waiting for the {cluster} cluster")
    run = wait_for_run(run.pk, timeout_seconds=60)
    out(
        f"  #{run.pk} {run.status} in {run.duration_seconds or 0:.2f}s: {json.dumps(run.result)[:400]}"
    )
    return run


def _post(
    url: str, payload: dict, *, secret: str, event_id: str, tamper: bool = False
) -> requests.Response:
    body = json.dumps(payload).encode()
    signature = signature_for(body, secret)
    if tamper:  # the amount changed after signing
        body = body.replace(b'"amount": 2400', b'"amount": 1')
    return requests.post(
        url,
        data=body,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature,
            "X-Razorpay-Event-Id": event_id,
        },
    )


def _webhooks(seeded: dict, *, out: Callable[[str], None]) -> None:
    base = str(_web["url"])
    _wait_for_web(base)
    sub = seeded["charged"]
    today: date = seeded["today"]
    # The cycle starts at the store's midnight (COMMERCE_TIME_ZONE), as Razorpay's would.
    start = int(datetime(today.year, today.month, today.day, tzinfo=store_zone()).timestamp())
    payload = {
        "entity": "event",
        "event": "subscription.charged",
        "contains": ["subscription", "payment"],
        "payload": {
            "subscription": {
                "entity": {"id": sub.provider_subscription_id, "current_start": start}
            },
            "payment": {
                "entity": {
                    "id": f"pay_{sub.provider_subscription_id}",
                    "amount": 2400,
                    "currency": "INR",
                }
            },
        },
    }
    event_id = f"evt_{sub.provider_subscription_id}"
    url = f"{base}/webhooks/razorpay/"
    first = _post(url, payload, secret=DEMO_SECRET, event_id=event_id)
    replay = _post(url, payload, secret=DEMO_SECRET, event_id=event_id)
    forged = _post(url, payload, secret=DEMO_SECRET, event_id=event_id + "_forged", tamper=True)
    out(
        f"POST signed subscription.charged for subscription {sub.pk}: {first.status_code} {first.json()}"
    )
    out(f"POST the same event again (replay): {replay.status_code} {replay.json()}")
    out(f"POST a forged body (amount changed after signing): {forged.status_code} {forged.json()}")
    event = WebhookEvent.objects.get(event_id=event_id)
    run = wait_until(
        lambda: JobRun.objects.filter(
            job=PROCESS_JOB, kwargs__event_id=event.pk, status__in=["succeeded", "failed"]
        ).first(),
        timeout_seconds=60,
        what="the webhook event's run on the subscriptions cluster",
    )
    event.refresh_from_db()
    orders = Order.objects.filter(subscription=sub)
    out(
        f"  run #{run.pk} {run.status}: event {event.outcome} ({event.detail});"
        f" orders for subscription {sub.pk}: {orders.count()}, status {orders.first().status}"
    )
    stored = WebhookEvent.objects.filter(event_id__startswith=event_id).count()
    out(f"  events stored: {stored} (the replay found the first, the forged one was refused)")


def run_demo(*, out: Callable[[str], None]) -> None:
    started = time.monotonic()
    try:
        seeded = _seed(out=out)
        first = JobRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        _run("commerce.process_due_subscriptions", {}, out=out, cluster="subscriptions")
        monthly, short = seeded["monthly"], seeded["short"]
        monthly.refresh_from_db()
        short.refresh_from_db()
        out(
            f"  monthly: order for {Order.objects.get(subscription=monthly).delivery_date}, next"
            f" delivery {monthly.next_delivery_date} (anchor day 31 kept)"
        )
        out(
            f"  out of stock: subscription {short.pk} stays due ({short.next_delivery_date}),"
            " customer told once"
        )
        _webhooks(seeded, out=out)
        _run("commerce.cleanup_expired_carts", {}, out=out, cluster="default")
        queued = Notification.objects.filter(
            template__startswith="commerce/", created_at__gte=timezone.now() - timedelta(minutes=5)
        )
        by_template: dict[str, int] = {}
        for template in queued.values_list("template", flat=True):
            by_template[template.rsplit("/", 1)[-1]] = (
                by_template.get(template.rsplit("/", 1)[-1], 0) + 1
            )
        out(f"  outbox (delivered by the notifications cluster): {by_template}")
        runs = JobRun.objects.filter(pk__gt=first, job__startswith="commerce.").count()
        out(f"commerce demo done in {time.monotonic() - started:.1f}s ({runs} commerce runs)")
    finally:
        proc = _web.pop("proc", None)
        if isinstance(proc, subprocess.Popen) and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
