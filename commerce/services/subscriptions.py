"""Due subscription deliveries become orders (seed 002's `process_due_subscriptions`).

Set-based in chunks (commerce.sql.PROCESS_DUE_CHUNK): each chunk is one statement in
its own transaction that locks its subscriptions FOR UPDATE SKIP LOCKED, then their
products, allocates the stock earliest delivery first, and writes the orders, lines,
stock, next dates and audit rows; the notifications (rendered by the template engine)
are inserted in the same transaction, so an order and its confirmation commit together. What the seed did per
subscription in a task of its own (a retry could double an order; stock was checked
outside the order's transaction) is here one statement per few thousand deliveries,
guarded by the one-order-per-delivery key and the stock check constraint.

A missed day is caught up: every active subscription dated today or earlier is due,
and one whose moved-on date is still due is taken again later in the same run (one
order per missed delivery date). Out of stock: no order, the date stays, the customer
is told once per delivery date, the run lists the subscription. Stock goes to the
earliest deliveries first: once one delivery of a product does not fit, no later one of
that product takes stock in the run (a smaller order never overtakes a waiting one).
"""

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from commerce import sql
from commerce.conf import commerce_settings
from commerce.services.actors import job_actor
from commerce.services.notifications import ORDER_CONFIRMATION, OUT_OF_STOCK, queue_rows
from jobs.context import report_progress

logger = logging.getLogger("commerce.subscriptions")

#: Ids listed in a run's result (the counts are always whole).
MAX_IDS = 500


def process_due_subscriptions(
    *,
    as_of: date | None = None,
    subscription_ids: list[int] | None = None,
    dry_run: bool = False,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Make the orders of every delivery due on or before `as_of` (default: today, UTC).

    `subscription_ids` limits the run to those subscriptions (admin "Process now");
    ones not due are left alone. Result: processed (deliveries looked at), orders
    created, out of stock (with ids), skipped (the order existed already: the date
    only moved on). A chunk (COMMERCE_SUBSCRIPTION_CHUNK_SIZE deliveries) is one
    statement and one transaction, its row locks held for that long.
    """
    as_of = as_of or timezone.now().date()
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
        "out_of_stock_subscription_ids": run.short_ids,
        "notifications_queued": run.notifications,
        "dry_run": False,
    }
    if run.totals["out_of_stock"]:
        logger.warning("%s deliveries out of stock: %s", result["out_of_stock"], run.short_ids[:20])
    logger.info("due subscriptions processed: %s", result)
    return result


@dataclass(frozen=True)
class _Chunk:
    """What one chunk statement did (commerce.sql.PROCESS_DUE_CHUNK's summary row)."""

    picked: int
    made: int
    #: Subscriptions out of stock, and their products (no later delivery of those this run).
    short_ids: list[int]
    short_products: list[int]
    #: Deliveries whose order existed already (the webhook made it): only the date moved.
    existed: int
    last: tuple[date, int]
    queued: int


@dataclass
class _Run:
    """Running totals and the walk position of one run."""

    actor: str
    totals: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("processed", "orders_created", "out_of_stock", "skipped"), 0
        )
    )
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
        }

    def add(self, chunk: _Chunk) -> None:
        self.totals["processed"] += chunk.picked
        self.totals["orders_created"] += chunk.made
        self.totals["out_of_stock"] += len(chunk.short_ids)
        self.totals["skipped"] += chunk.existed
        self.short_products.update(chunk.short_products)
        self.short_ids.extend(chunk.short_ids[: max(0, MAX_IDS - len(self.short_ids))])
        self.notifications += chunk.queued
        self.after = chunk.last
        report_progress(done=self.totals["processed"], unit="deliveries", **self.totals)


def _process_chunk(params: dict[str, Any]) -> _Chunk | None:
    """One chunk in its own transaction (the statement, then its orders' confirmations and
    out-of-stock notices); None when nothing was due past the position."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql.PROCESS_DUE_CHUNK, params)
            picked, made, short, existed, products, _moved, last_date, last_id, *rows = (
                cursor.fetchone()
            )
        if not picked:
            return None
        confirmations, short_notices = rows
        queued = queue_rows(ORDER_CONFIRMATION, confirmations)
        queued += queue_rows(OUT_OF_STOCK, short_notices)
    return _Chunk(picked, made, short, products, existed, (last_date, last_id), queued)


def _preview(*, as_of: date, subscription_ids: list[int] | None) -> dict[str, Any]:
    """What a run would do now for deliveries due today (catch-up repeats not counted)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.PREVIEW_DUE, {"as_of": as_of, "subscription_ids": subscription_ids})
        due, existed, short = cursor.fetchone()
    return {
        "as_of": as_of.isoformat(),
        "processed": due,
        "orders_created": due - existed - short,
        "out_of_stock": short,
        "skipped": existed,
        "dry_run": True,
    }
