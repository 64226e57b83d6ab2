"""Due subscription deliveries become orders (seed 002's `process_due_subscriptions`).

Set-based in chunks (commerce.sql.PROCESS_DUE_CHUNK): each chunk is one statement in
its own transaction that locks its subscriptions FOR UPDATE SKIP LOCKED, then their
products, allocates the stock earliest delivery first, and writes the orders, lines,
stock, next dates, audit rows and notifications together. What the seed did per
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
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from commerce import sql
from commerce.conf import commerce_setting
from commerce.services.actors import job_actor
from commerce.services.notifications import ORDER_PARTS
from commerce.services.outbox_sql import build_chunk_statement, queue_fallback_rows
from jobs.context import report_progress
from jobs.services.outbox import kick_delivery

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
    chunk_size = chunk_size or int(commerce_setting("SUBSCRIPTION_CHUNK_SIZE"))
    if dry_run:
        return _preview(as_of=as_of, subscription_ids=subscription_ids)
    statement = build_chunk_statement(sql.PROCESS_DUE_CHUNK, ORDER_PARTS)
    actor = job_actor()
    totals = {"processed": 0, "orders_created": 0, "out_of_stock": 0, "skipped": 0}
    short_ids: list[int] = []
    notifications = 0
    short_products: set[int] = set()
    after: tuple[date, int] = (date.min, 0)
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    statement.sql,
                    {
                        **statement.params,
                        "as_of": as_of,
                        "after_date": after[0],
                        "after_id": after[1],
                        "subscription_ids": subscription_ids,
                        "short_products": sorted(short_products),
                        "limit": chunk_size,
                        "now": timezone.now(),
                        "actor": actor,
                    },
                )
                (
                    picked,
                    made,
                    short,
                    existed,
                    short_in_chunk,
                    _moved,
                    last_date,
                    last_id,
                    queued,
                    rows,
                ) = cursor.fetchone()
            if not picked:
                break
            queued += queue_fallback_rows(statement, rows)
            if queued:
                transaction.on_commit(kick_delivery)
        totals["processed"] += picked
        totals["orders_created"] += made
        totals["out_of_stock"] += len(short)
        totals["skipped"] += existed
        short_products.update(short_in_chunk)
        short_ids.extend(short[: max(0, MAX_IDS - len(short_ids))])
        notifications += queued
        after = (last_date, last_id)
        report_progress(done=totals["processed"], unit="deliveries", **totals)
    result = {
        "as_of": as_of.isoformat(),
        **totals,
        "out_of_stock_subscription_ids": short_ids,
        "notifications_queued": notifications,
        "dry_run": False,
    }
    if totals["out_of_stock"]:
        logger.warning("%s deliveries out of stock: %s", totals["out_of_stock"], short_ids[:20])
    logger.info("due subscriptions processed: %s", result)
    return result


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
