"""Two processes run process_due_subscriptions at once: each order once, stock never oversold.

The service is run directly (no single-flight lease), so only the chunk statement's
FOR UPDATE SKIP LOCKED on subscriptions, the products' row locks and the
one-order-per-delivery key keep the two apart.
"""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from commerce.models import Order, OrderLine, Product
from jobs.models import Notification
from tests.commerce.conftest import TODAY

pytestmark = pytest.mark.django_db(transaction=True)

#: Waits for a common start time, then runs the service itself.
WORKER = """
import json, sys, time
from datetime import date
import django
django.setup()
from commerce.services.subscriptions import process_due_subscriptions
start_at, as_of, chunk = float(sys.argv[1]), date.fromisoformat(sys.argv[2]), int(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
print(json.dumps(process_due_subscriptions(as_of=as_of, chunk_size=chunk)))
"""


def run_two_workers(*, chunk_size: int) -> list[dict]:
    s = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        "LOG_LEVEL": "WARNING",
    }
    start_at = time.time() + 3  # both interpreters are up and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(start_at), TODAY.isoformat(), str(chunk_size)],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes__stock_for_3_of_5__exactly_3_orders_stock_0(
    subscription_factory, product_factory
):
    product = product_factory(stock=3)
    subs = [subscription_factory(product=product) for _ in range(5)]

    results = run_two_workers(chunk_size=1)

    assert sum(r["orders_created"] for r in results) == 3
    assert Order.objects.count() == 3
    product.refresh_from_db()
    assert product.stock_quantity == 0
    short = {pk for r in results for pk in r["out_of_stock_subscription_ids"]}
    made = set(Order.objects.values_list("subscription_id", flat=True))
    assert len(short - made) == 2 and made | short == {s.pk for s in subs}
    told = Notification.objects.filter(template__endswith="subscription_out_of_stock")
    assert told.count() == 2  # once each, even if both workers saw them short


def test_two_processes__many_products__each_delivery_once_never_oversold(
    subscription_factory, product_factory, customer_factory
):
    products = [product_factory(stock=stock) for stock in (0, 5, 40, 200)]
    customer = customer_factory(phone="+15550000")
    subs = []
    for i in range(240):
        subs.append(
            subscription_factory(
                product=products[i % 4],
                customer=customer,
                quantity=1 + i % 3,
                next_delivery_date=TODAY - timedelta(days=i % 5),
            )
        )
    demand = Counter()
    for sub in subs:
        demand[sub.product_id] += sub.quantity

    results = run_two_workers(chunk_size=7)

    assert all(r["processed"] > 0 for r in results), results  # both really worked
    per_delivery = Counter(Order.objects.values_list("subscription_id", "delivery_date"))
    assert max(per_delivery.values()) == 1
    for product in products:
        initial = product.stock_quantity
        product.refresh_from_db()
        taken = sum(OrderLine.objects.filter(product=product).values_list("quantity", flat=True))
        assert product.stock_quantity == initial - taken >= 0
        # stock went to deliveries until the next one no longer fit
        assert initial - taken < 3 or taken == demand[product.pk]
    assert Product.objects.filter(stock_quantity__lt=0).count() == 0
    orders = Order.objects.count()
    assert sum(r["orders_created"] for r in results) == orders
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert confirmations.count() == 2 * orders  # email and SMS, once each
