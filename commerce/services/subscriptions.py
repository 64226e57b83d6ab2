"""Due subscription deliveries become orders (`commerce.process_due_subscriptions`), a
chunk per transaction: two statements (commerce.sql) while a helper thread renders the
notifications. The rules, and why not a task per subscription: docs/commerce.md."""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from commerce import sql
from commerce.conf import commerce_settings
from commerce.services.audit import job_actor
from commerce.services.dates import day_key, store_today
from commerce.services.notifications import (
    DELIVERIES_SKIPPED,
    ORDER_CONFIRMATION,
    OUT_OF_STOCK,
    confirmation_key,
)
from jobs.outbox.notifications import (
    OutgoingNotification,
    RenderedNotification,
    queue_rendered,
    render_notifications,
)
from jobs.runs.current import flag_for_attention
from jobs.runs.progress import report_progress
from jobs.sql import fetch

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
    """Make the deliveries due on or before `as_of` (default: the store's today), of
    `subscription_ids` only when given (admin "Process now"; those not due are left
    alone). The dry run reports the same counts by the same rule (docs/commerce.md)."""
    as_of = as_of or store_today()
    chunk_size = chunk_size or int(commerce_settings.SUBSCRIPTION_CHUNK_SIZE)
    if dry_run:
        return _preview(as_of=as_of, subscription_ids=subscription_ids)
    run = _Run(actor=job_actor())
    fixed = {"as_of": as_of, "subscription_ids": subscription_ids}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="commerce-render") as renderer:
        while True:
            chunk = _process_chunk({**fixed, **run.position(), "limit": chunk_size}, renderer)
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
        # One line an operator can act on: how many deliveries, which products.
        products = ", ".join(f"{name} ({n})" for name, n in sorted(run.short_per_product.items()))
        flag_for_attention(
            f"{run.totals['out_of_stock']} deliveries out of stock: {products}; restock, the"
            " next run makes them"
        )
    logger.info("due subscriptions processed: %s", result)
    return result


@dataclass(frozen=True)
class _Chunk:
    """What one chunk (or a charge) did: write_deliveries' summary."""

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


class Delivery(NamedTuple):
    """One picked delivery as the rule and the allocation settled it (commerce.sql._PICKED)."""

    subscription_id: int
    next_delivery_date: date
    deliver_on: date
    #: Where the next date moves; None when it stays (out of stock).
    new_date: date | None
    #: The order of this delivery exists (a charge made it): the date only moves on.
    has_order: bool
    fits: bool
    #: Missed deliveries of the schedule skipped by moving to `deliver_on`.
    skipped: int
    #: The id drawn for its order when it fits, else None.
    order_id: int | None
    customer_id: int
    product_id: int
    quantity: int
    price: Decimal
    product_name: str
    sku: str
    customer_name: str
    email: str
    phone: str

    @property
    def short(self) -> bool:
        return not self.has_order and not self.fits

    @property
    def caught_up(self) -> bool:
        """Moved past missed deliveries: recorded, and the customer told once."""
        return self.new_date is not None and self.skipped > 0


def write_deliveries(
    pick: str, params: dict[str, Any], *, renderer: Executor | None = None
) -> _Chunk | None:
    """Pick (the daily chunk's or a charge's), write, and queue the notifications of a set
    of deliveries, in the caller's transaction; None when the pick found nothing. With a
    `renderer` (one helper thread) the notifications are rendered there while PostgreSQL
    writes; a template that cannot render raises here, and the transaction rolls back."""
    rows = list(map(Delivery._make, fetch(pick, params)))
    if not rows:
        return None
    rendering = renderer.submit(_render, rows) if renderer else None
    [(order_ids,)] = fetch(sql.WRITE_DELIVERIES, _write_params(rows, params))
    rendered = rendering.result() if rendering else _render(rows)
    made = set(order_ids)
    # A confirmation goes with its order: none for one the last guard (ON CONFLICT) skipped.
    notes = [note for order_id, note in rendered if order_id is None or order_id in made]
    queued = queue_rendered(notes) if notes else 0
    short = [row for row in rows if row.short]
    caught_up = [row for row in rows if row.caught_up]
    counts = {
        "processed": len(rows),
        "orders_created": len(order_ids),
        "out_of_stock": len(short),
        "already_ordered": sum(row.has_order for row in rows),
        "deliveries_skipped": sum(row.skipped for row in caught_up),
        "subscriptions_caught_up": len(caught_up),
    }
    return _Chunk(
        counts,
        dict(Counter(f"{row.sku} {row.product_name}" for row in short)),
        sorted(row.subscription_id for row in short),
        sorted({row.product_id for row in short}),
        (rows[-1].next_delivery_date, rows[-1].subscription_id),  # rows come in walk order
        order_ids,
        queued,
    )


def _write_params(rows: list[Delivery], params: dict[str, Any]) -> dict[str, Any]:
    """WRITE_DELIVERIES's parameters: the picked rows as parallel arrays (array literals)."""
    fitting = [row for row in rows if row.fits]
    moved = [row for row in rows if row.new_date is not None]
    caught_up = [row for row in rows if row.caught_up]
    return {
        "order_ids": _array(row.order_id for row in fitting),
        "subscription_ids": _array(row.subscription_id for row in fitting),
        "customer_ids": _array(row.customer_id for row in fitting),
        "product_ids": _array(row.product_id for row in fitting),
        "quantities": _array(row.quantity for row in fitting),
        "prices": _array(row.price for row in fitting),
        "delivery_dates": _array(row.deliver_on for row in fitting),
        "moved_ids": _array(row.subscription_id for row in moved),
        "new_dates": _array(row.new_date for row in moved),
        "caught_up_ids": _array(row.subscription_id for row in caught_up),
        "caught_up_skipped": _array(row.skipped for row in caught_up),
        "caught_up_from": _array(row.next_delivery_date for row in caught_up),
        "caught_up_on": _array(row.deliver_on for row in caught_up),
        "caught_up_next": _array(row.new_date for row in caught_up),
        "paid_by": params.get("paid_by"),
        "now": params["now"],
        "actor": params["actor"],
    }


def _array(values: Iterable[int | Decimal | date]) -> str:
    """A PostgreSQL array literal of numbers or dates (`{1,2}`; the statement casts it).

    Written by hand: psycopg adapts a list element by element in Python, about 2 ms per
    2,000 values and array: 20 ms a chunk, 1 s of a 100,000 run (bench/subscriptions.py).
    """
    return "{" + ",".join(map(str, values)) + "}"


def _render(rows: list[Delivery]) -> list[tuple[int | None, RenderedNotification]]:
    """Build and render the deliveries' notifications, each with the order it confirms
    (None for the others). Touches no database: runs on the helper thread."""
    tagged = list(_notifications(rows))
    rendered = render_notifications(item for _, item in tagged)
    return [(order_id, note) for (order_id, _), note in zip(tagged, rendered, strict=True)]


def _notifications(rows: list[Delivery]) -> Iterator[tuple[int | None, OutgoingNotification]]:
    """Order confirmations (every channel the customer has), out-of-stock notices (once
    per delivery) and skipped-deliveries notices (once per missed stretch) by email, else
    SMS."""
    for row in rows:
        context = {
            "customer_name": row.customer_name,
            "product_name": row.product_name,
            "quantity": row.quantity,
            "delivery_date": row.deliver_on.isoformat(),
        }
        if row.fits:
            confirmation = {**context, "order_id": row.order_id, "total": str(row.price)}
            for channel, recipient in (("email", row.email), ("sms", row.phone)):
                if recipient:
                    yield (
                        row.order_id,
                        OutgoingNotification(
                            channel=channel,
                            recipient=recipient,
                            template=ORDER_CONFIRMATION,
                            dedup_key=confirmation_key(row.order_id, channel),
                            context=confirmation,
                        ),
                    )
        channel, recipient = ("email", row.email) if row.email else ("sms", row.phone)
        if not recipient:
            continue
        notices = []
        if row.short:
            key = f"subscription_out_of_stock:{row.subscription_id}:{day_key(row.deliver_on)}"
            notices.append((OUT_OF_STOCK, key, context))
        if row.caught_up:
            key = f"subscription_skipped:{row.subscription_id}:{day_key(row.next_delivery_date)}"
            missed = {"skipped": row.skipped, "missed_from": row.next_delivery_date.isoformat()}
            notices.append((DELIVERIES_SKIPPED, key, {**context, **missed}))
        for template, key, notice in notices:
            yield (
                None,
                OutgoingNotification(
                    channel=channel,
                    recipient=recipient,
                    template=template,
                    dedup_key=key,
                    context=notice,
                ),
            )


def _process_chunk(params: dict[str, Any], renderer: Executor) -> _Chunk | None:
    """One chunk in its own transaction: a template that cannot render rolls it back.

    The foreign keys of its orders and lines (Django declares them DEFERRABLE INITIALLY
    DEFERRED) are checked by the write, while the helper thread renders, not at the
    commit, where nothing runs beside them (a tenth of a 100,000 run).
    """
    with transaction.atomic():
        fetch("SET CONSTRAINTS ALL IMMEDIATE", {})
        return write_deliveries(sql.PICK_DUE, params, renderer=renderer)


def _preview(*, as_of: date, subscription_ids: list[int] | None) -> dict[str, Any]:
    """What a run would do now: the same rule and allocation, nothing written."""
    params = {
        "as_of": as_of,
        "subscription_ids": subscription_ids,
        "short_products": [],
        "deliver_on": None,
    }
    [(*counts, per_product, short_ids)] = fetch(sql.PREVIEW_DUE, params)
    return {
        "as_of": as_of.isoformat(),
        **dict(zip(COUNTS, counts, strict=True)),
        "out_of_stock_products": per_product,
        "out_of_stock_subscription_ids": short_ids[:MAX_IDS],
        "dry_run": True,
    }
