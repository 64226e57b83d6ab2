"""Due subscription deliveries become orders (seed 002's `process_due_subscriptions`).

Set-based in chunks (commerce.sql.PROCESS_DUE_CHUNK): each chunk is one statement in
its own transaction that locks its subscriptions FOR UPDATE SKIP LOCKED, then their
products, allocates the stock earliest delivery first, and writes the orders, lines,
stock, next dates and audit rows; the notifications (rendered by the template engine)
are inserted in the same transaction, so an order and its confirmation commit together. What the seed did per
subscription in a task of its own (a retry could double an order; stock was checked
outside the order's transaction) is here one statement per few thousand deliveries,
guarded by the one-order-per-delivery key and the stock check constraint.

Catch-up is bounded, one rule (SQL commerce_due_delivery): a delivery late by less than
one period is made, once and late; one missed by more (a pause, a night's outage, a
typed 0001-01-01) moves to the next date of its schedule on or after today, the missed
ones recorded (audit row, run result) and the customer told once. No run makes more
than one delivery per subscription. Out of stock: no order, the date stays, the
customer is told once per delivery, the run is flagged naming the products. Stock goes
to the earliest deliveries first: once one delivery of a product does not fit, no later
one of that product takes stock in the run (a smaller order never overtakes a waiting
one).
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from commerce import sql
from commerce.conf import commerce_settings
from commerce.services.actors import job_actor
from commerce.services.dates import store_today
from commerce.services.notifications import (
    DELIVERIES_SKIPPED,
    ORDER_CONFIRMATION,
    OUT_OF_STOCK,
    queue_rows,
)
from jobs.context import flag_for_attention, report_progress

logger = logging.getLogger("commerce.subscriptions")

#: Ids listed in a run's result (the counts are always whole).
MAX_IDS = 500
#: The counts a run and its dry run report alike.
COUNTS = (
    "processed",
    "orders_created",
    "out_of_stock",
    "already_ordered",
    "deliveries_skipped",
    "subscriptions_caught_up",
)


def process_due_subscriptions(
    *,
    as_of: date | None = None,
    subscription_ids: list[int] | None = None,
    dry_run: bool = False,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Make the deliveries due on or before `as_of` (default: the store's today).

    `subscription_ids` limits the run to those subscriptions (admin "Process now");
    ones not due are left alone. Result: processed (subscriptions looked at), orders
    created, out of stock (with ids and per product), already ordered (the webhook made
    the order: the date only moved on), deliveries skipped and the subscriptions caught
    up (missed by more than one period: moved to the next date of their schedule). The
    dry run reports the same counts from the same rule. A chunk
    (COMMERCE_SUBSCRIPTION_CHUNK_SIZE subscriptions) is one statement and one transaction.
    """
    as_of = as_of or store_today()
    chunk_size = chunk_size or int(commerce_settings.SUBSCRIPTION_CHUNK_SIZE)
    if dry_run:
        return _preview(as_of=as_of, subscription_ids=subscription_ids)
    run = _Run(actor=job_actor())
    fixed = {"as_of": as_of, "subscription_ids": subscription_ids}
    while True:
        chunk = _process_chunk({**fixed, **run.position(), "limit": chunk_size})
        if chunk is None:
            break
        run.add(chunk)
    result = {
        "as_of": as_of.isoformat(),
        **run.totals,
        "out_of_stock_products": dict(run.short_per_product),
        "out_of_stock_subscription_ids": run.short_ids,
        "notifications_queued": run.notifications,
        "dry_run": False,
    }
    if run.totals["out_of_stock"]:
        flag_for_attention(describe_stock_outs(run.totals["out_of_stock"], run.short_per_product))
    logger.info("due subscriptions processed: %s", result)
    return result


def describe_stock_outs(count: int, per_product: dict[str, int]) -> str:
    """One line an operator can act on: how many deliveries, which products."""
    products = ", ".join(f"{name} ({n})" for name, n in sorted(per_product.items()))
    return f"{count} deliveries out of stock: {products}; restock, the next run makes them"


@dataclass(frozen=True)
class _Chunk:
    """What one chunk statement did (commerce.sql.PROCESS_DUE_CHUNK's summary row)."""

    counts: dict[str, int]
    short_per_product: dict[str, int]
    short_ids: list[int]
    #: Products short in this chunk: no later delivery of those takes stock this run.
    short_products: list[int]
    last: tuple[date, int]
    order_ids: list[int]
    queued: int


@dataclass
class _Run:
    """Running totals and the walk position of one run."""

    actor: str
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    short_per_product: Counter = field(default_factory=Counter)
    short_ids: list[int] = field(default_factory=list)
    short_products: set[int] = field(default_factory=set)
    notifications: int = 0
    after: tuple[date, int] = (date.min, 0)

    def position(self) -> dict[str, Any]:
        return {
            "after_date": self.after[0],
            "after_id": self.after[1],
            "short_products": sorted(self.short_products),
            "now": timezone.now(),
            "actor": self.actor,
            "deliver_on": None,
            "paid_by": None,
        }

    def add(self, chunk: _Chunk) -> None:
        for key, value in chunk.counts.items():
            self.totals[key] += value
        self.short_per_product.update(chunk.short_per_product)
        self.short_products.update(chunk.short_products)
        self.short_ids.extend(chunk.short_ids[: max(0, MAX_IDS - len(self.short_ids))])
        self.notifications += chunk.queued
        self.after = chunk.last
        report_progress(done=self.totals["processed"], unit="subscriptions", **self.totals)


def write_deliveries(statement: str, params: dict[str, Any]) -> _Chunk | None:
    """Run one delivery-writing statement (commerce.sql: the daily chunk or a charge's) and
    queue its notifications, in the caller's transaction; None when it picked nothing."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        (
            made,
            picked,
            short,
            existed,
            skipped,
            caught_up,
            per_product,
            short_ids,
            products,
            *rest,
        ) = cursor.fetchone()
    if not picked:
        return None
    last_date, last_id, order_ids, confirmations, short_notices, skipped_notices = rest
    queued = queue_rows(ORDER_CONFIRMATION, confirmations)
    queued += queue_rows(OUT_OF_STOCK, short_notices)
    queued += queue_rows(DELIVERIES_SKIPPED, skipped_notices)
    counts = {
        "processed": picked,
        "orders_created": made,
        "out_of_stock": short,
        "already_ordered": existed,
        "deliveries_skipped": skipped,
        "subscriptions_caught_up": caught_up,
    }
    return _Chunk(counts, per_product, short_ids, products, (last_date, last_id), order_ids, queued)


def _process_chunk(params: dict[str, Any]) -> _Chunk | None:
    """One chunk in its own transaction: a template that cannot render rolls it back."""
    with transaction.atomic():
        return write_deliveries(sql.PROCESS_DUE_CHUNK, params)


def _preview(*, as_of: date, subscription_ids: list[int] | None) -> dict[str, Any]:
    """What a run would do now: the same rule and allocation, nothing written."""
    params = {
        "as_of": as_of,
        "subscription_ids": subscription_ids,
        "short_products": [],
        "deliver_on": None,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.PREVIEW_DUE, params)
        made, picked, short, existed, skipped, caught_up, per_product, short_ids, _ = (
            cursor.fetchone()
        )
    return {
        "as_of": as_of.isoformat(),
        "processed": picked,
        "orders_created": made,
        "out_of_stock": short,
        "already_ordered": existed,
        "deliveries_skipped": skipped,
        "subscriptions_caught_up": caught_up,
        "out_of_stock_products": per_product,
        "out_of_stock_subscription_ids": short_ids[:MAX_IDS],
        "dry_run": True,
    }
