"""The daily job and the provider's charges for the same deliveries, at the same moment, in
two processes: one order per delivery, stock taken once, every charged order paid."""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from commerce.models import Order, Product
from jobs.models import Notification
from tests.commerce.conftest import TODAY

pytestmark = pytest.mark.django_db(transaction=True)

DAILY = """
import json, sys, time
from datetime import date
import django
django.setup()
from commerce.services.subscriptions import process_due_subscriptions
start_at = float(sys.argv[1])
time.sleep(max(0.0, start_at - time.time()))
print(json.dumps(process_due_subscriptions(as_of=date.fromisoformat(sys.argv[2]), chunk_size=3)))
"""

CHARGES = """
import json, sys, time
from datetime import date
import django
django.setup()
from commerce.services.payments import charge_subscription
start_at, billing = float(sys.argv[1]), date.fromisoformat(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
created = 0
for provider_id in sys.argv[3:]:
    created += charge_subscription(provider_subscription_id=provider_id, billing_date=billing,
                                   payment_id="pay_" + provider_id, actor="test")["order_created"]
print(json.dumps({"created": created}))
"""


def test_daily_job_and_charges_at_once__one_order_per_delivery(
    subscription_factory, product_factory
):
    product = product_factory(stock=1000)
    subs = [
        subscription_factory(product=product, quantity=2, provider_subscription_id=f"sub_{i}")
        for i in range(40)
    ]
    s = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        "LOG_LEVEL": "WARNING",
    }
    start_at = str(time.time() + 3)
    scripts = [
        [DAILY, start_at, TODAY.isoformat()],
        [CHARGES, start_at, TODAY.isoformat(), *(f"sub_{i}" for i in reversed(range(40)))],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", *script],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in scripts
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    per_delivery = Counter(Order.objects.values_list("subscription_id", "delivery_date"))
    assert len(per_delivery) == 40 and set(per_delivery.values()) == {1}
    assert {sub for sub, _date in per_delivery} == {s.pk for s in subs}
    assert results[0]["orders_created"] + results[1]["created"] == 40, results
    assert Product.objects.get(pk=product.pk).stock_quantity == 1000 - 2 * 40
    assert set(Order.objects.values_list("status", flat=True)) == {"paid"}
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert confirmations.count() == 40
