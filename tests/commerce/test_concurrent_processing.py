"""Two processes run process_due_subscriptions at once: each order once, stock never oversold.

The service is run directly (no single-flight lease), so only the chunk statement's
FOR UPDATE SKIP LOCKED on subscriptions, the products' row locks and the
one-order-per-delivery key keep the two apart.
"""

import json
from collections import Counter
from datetime import timedelta

import pytest

from commerce.models import Order, OrderLine, Product
from jobs.models import Notification
from tests.commerce.conftest import TODAY
from tests.race import RowLocks, results, start_script, wait_until_all_blocked

pytestmark = pytest.mark.django_db(transaction=True)

#: Runs the service itself (no single-flight lease).
WORKER = """
import json, sys
from datetime import date
import django
django.setup()
from commerce.services.subscriptions import process_due_subscriptions
as_of, chunk = date.fromisoformat(sys.argv[1]), int(sys.argv[2])
print(json.dumps(process_due_subscriptions(as_of=as_of, chunk_size=chunk)))
"""


def run_two_workers(*, chunk_size: int, products: list[Product]) -> list[dict]:
    """Both workers hold a chunk of subscriptions and wait for the products at the same
    moment (the test holds the products' row locks until it has seen that), then race."""
    with RowLocks("commerce_product", [p.pk for p in products]):
        procs = [
            start_script(WORKER, TODAY.isoformat(), str(chunk_size), name=f"worker{i}")
            for i in (1, 2)
        ]
        wait_until_all_blocked(["worker1", "worker2"], procs)
    return [json.loads(line) for line in results(procs)]


def test_two_processes__stock_for_3_of_5__exactly_3_orders_stock_0(
    subscription_factory, product_factory
):
    product = product_factory(stock=3)
    subs = [subscription_factory(product=product) for _ in range(5)]

    results = run_two_workers(chunk_size=1, products=[product])

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

    results = run_two_workers(chunk_size=7, products=products)

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
