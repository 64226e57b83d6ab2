"""The daily job and the provider's charges for the same deliveries, at the same moment, in
two processes: one order per delivery, stock taken once, every charged order paid.

The test holds the product's row lock until both processes are blocked on it inside their
transactions (tests/race.py), so the two really overlap.
"""

import json
from collections import Counter

import pytest

from commerce.models import Order, Product
from jobs.models import Notification
from tests.commerce.conftest import TODAY
from tests.race import RowLocks, results, start_script, wait_until_all_blocked

pytestmark = pytest.mark.django_db(transaction=True)

DAILY = """
import json, sys
from datetime import date
import django
django.setup()
from commerce.services.subscriptions import process_due_subscriptions
print(json.dumps(process_due_subscriptions(as_of=date.fromisoformat(sys.argv[1]), chunk_size=3)))
"""

CHARGES = """
import json, sys
from datetime import date
import django
django.setup()
from commerce.services.payments import charge_subscription
billing = date.fromisoformat(sys.argv[1])
created = 0
for provider_id in sys.argv[2:]:
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
    with RowLocks("commerce_product", [product.pk]):
        procs = [
            start_script(DAILY, TODAY.isoformat(), name="daily"),
            start_script(
                CHARGES,
                TODAY.isoformat(),
                *(f"sub_{i}" for i in reversed(range(40))),
                name="charges",
            ),
        ]
        # Each holds its first subscriptions and waits for the product: both inside at once.
        assert wait_until_all_blocked(["daily", "charges"], procs) == {"daily", "charges"}
    daily, charges = (json.loads(line) for line in results(procs))

    per_delivery = Counter(Order.objects.values_list("subscription_id", "delivery_date"))
    assert len(per_delivery) == 40 and set(per_delivery.values()) == {1}
    assert {sub for sub, _date in per_delivery} == {s.pk for s in subs}
    assert daily["orders_created"] + charges["created"] == 40, (daily, charges)
    assert Product.objects.get(pk=product.pk).stock_quantity == 1000 - 2 * 40
    assert set(Order.objects.values_list("status", flat=True)) == {"paid"}
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert confirmations.count() == 40
