"""Commerce fixtures: a frozen clock and factories with overridable defaults."""

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine

from commerce.models import Customer, Product, Subscription

#: The daily run in most tests: 2026-03-02 00:00 UTC.
NOW = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
TODAY = NOW.date()
_numbers = itertools.count(1)


@pytest.fixture
def frozen_now() -> Iterator[datetime]:
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def customer_factory() -> Callable[..., Customer]:
    def make(*, email: str | None = None, phone: str = "", name: str | None = None) -> Customer:
        n = next(_numbers)
        return Customer.objects.create(
            name=name or f"Customer {n}",
            email=f"c{n}@example.com" if email is None else email,
            phone=phone,
        )

    return make


@pytest.fixture
def product_factory() -> Callable[..., Product]:
    def make(*, stock: int = 100, price: str = "10.00", name: str | None = None) -> Product:
        n = next(_numbers)
        return Product.objects.create(
            sku=f"SKU-{n}", name=name or f"Product {n}", price=Decimal(price), stock_quantity=stock
        )

    return make


@pytest.fixture
def subscription_factory(customer_factory, product_factory) -> Callable[..., Subscription]:
    def make(
        *,
        product: Product | None = None,
        customer=None,
        quantity: int = 1,
        frequency: str = "weekly",
        next_delivery_date: date = TODAY,
        status: str = "active",
        price: str = "25.00",
        **fields,
    ) -> Subscription:
        return Subscription.objects.create(
            customer=customer or customer_factory(),
            product=product or product_factory(),
            quantity=quantity,
            frequency=frequency,
            next_delivery_date=next_delivery_date,
            status=status,
            price_per_delivery=Decimal(price),
            **fields,
        )

    return make
