"""Outbox notifications of the loyalty app: built from chunk rows, deduplicated per card per cycle.

A cycle is one stretch of inactivity, named by the card's `last_activity_at`: the
same card warned or expired twice in one cycle maps to the same dedup key, so a
rerun (or a second worker) never queues a second message.
"""

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.template import Context
from django.template.base import TextNode, Variable, VariableNode, render_value_in_context
from django.template.loader import get_template, render_to_string
from django.utils import timezone

from jobs.retry import DEFAULT_RETRY
from jobs.services.outbox import OutgoingNotification, kick_delivery
from loyalty import sql

WARNING_TEMPLATE = "loyalty/notifications/points_expiring"
EXPIRED_TEMPLATE = "loyalty/notifications/points_expired"


class CardRow(NamedTuple):
    """One card returned by a chunk statement, with what its customer needs to hear.

    A named tuple: built straight from the statement's rows (`CardRow._make`), in column
    order (loyalty.sql), 200,000 times in a big run.
    """

    #: Card primary key.
    card_id: int
    #: Printed card number.
    number: str
    #: Points expiring (warning) or expired (expiration).
    points: int
    #: Start of the inactivity cycle.
    last_activity_at: datetime
    customer_name: str
    email: str
    phone: str


def cycle_key(row: CardRow) -> str:
    return row.last_activity_at.strftime("%Y%m%dT%H%M%S")


def _channel(row: CardRow) -> tuple[str, str] | None:
    if row.email:
        return "email", row.email
    if row.phone:
        return "sms", row.phone
    return None


def warning_notifications(
    rows: list[CardRow], *, merchant_name: str, expiration_days: int, now: datetime
) -> list[OutgoingNotification]:
    """One `points_expiring` per card that has a way to be reached."""
    items = []
    for row in rows:
        channel = _channel(row)
        if channel is None:
            continue
        expires_at = row.last_activity_at + timedelta(days=expiration_days)
        days_remaining = max(0, (expires_at - now).days)
        items.append(
            OutgoingNotification(
                channel=channel[0],
                recipient=channel[1],
                template=WARNING_TEMPLATE,
                dedup_key=f"points_expiring:{row.card_id}:{cycle_key(row)}",
                context={
                    "customer_name": row.customer_name,
                    "card_number": row.number,
                    "merchant_name": merchant_name,
                    "points": row.points,
                    "expiration_date": expires_at.strftime("%Y-%m-%d"),
                    "days_remaining": days_remaining,
                },
            )
        )
    return items


def expired_notifications(
    rows: list[CardRow], *, merchant_name: str, expiration_days: int
) -> list[OutgoingNotification]:
    """One `points_expired` per expired card that has a way to be reached."""
    items = []
    for row in rows:
        channel = _channel(row)
        if channel is None:
            continue
        items.append(
            OutgoingNotification(
                channel=channel[0],
                recipient=channel[1],
                template=EXPIRED_TEMPLATE,
                dedup_key=f"points_expired:{row.card_id}:{cycle_key(row)}",
                context={
                    "customer_name": row.customer_name,
                    "card_number": row.number,
                    "merchant_name": merchant_name,
                    "points": row.points,
                    "expiration_days": expiration_days,
                },
            )
        )
    return items


# --- Queueing a chunk's notifications: each template compiled once, one INSERT per chunk ---
#
# jobs.services.outbox.queue_notifications renders two Django templates per email row and
# inserts with one placeholder per value; at 200,000 expired cards that cost more than
# the expiration itself (bench/expire_points.py). Our templates are plain text with
# `{{ name }}` variables only, so each is split once into text and variables and filled
# per row with the engine's own value rendering (localize + autoescape): the rows record
# exactly what render_notification would have produced (tests/loyalty compare the two).
# A template using anything else (filters, tags) is rendered by the engine as before.

_Part = tuple[str, str | None]  # (text, None) or ("", context key)


@dataclass(frozen=True)
class _Compiled:
    parts: tuple[_Part, ...]
    #: Renders values as the engine would for this template (autoescape, localization).
    context: Context
    #: Whether ints render as str(int) here (no thousand separators): checked, not assumed.
    plain_ints: bool
    #: The context keys the template uses.
    keys: frozenset[str]

    def render(self, values: dict[str, Any]) -> str | None:
        """The template rendered with `values`, or None when only the engine can render it.

        Each variable is rendered as render_value_in_context would (which the engine
        calls), minus its per-value format lookups for str (localize and localtime leave a
        plain str unchanged: escape only) and int (plain_ints); callables need the engine.
        """
        if not self.keys <= values.keys():
            return None
        autoescape = self.context.autoescape
        out = []
        for text, key in self.parts:
            if key is None:
                out.append(text)
                continue
            value = values[key]
            kind = type(value)
            if kind is str:
                # django.utils.html.escape is html.escape marked safe: the same text.
                out.append(html.escape(value) if autoescape else value)
            elif kind is int and self.plain_ints:
                out.append(str(value))
            elif callable(value):
                return None
            else:
                out.append(render_value_in_context(value, self.context))
        return "".join(out)


def _compile(template_name: str) -> _Compiled | None:
    """Text and plain-variable parts of a template, or None when it needs the engine."""
    inner = getattr(get_template(template_name), "template", None)  # django.template.Template
    if inner is None:
        return None
    parts: list[_Part] = []
    for node in inner.nodelist:
        if type(node) is TextNode:
            parts.append((node.s, None))
            continue
        if type(node) is not VariableNode:
            return None
        expression = node.filter_expression
        variable = expression.var
        if (
            expression.filters
            or not isinstance(variable, Variable)
            or variable.lookups is None
            or len(variable.lookups) != 1
            or variable.translate
        ):
            return None
        parts.append(("", variable.lookups[0]))
    context = Context(autoescape=inner.engine.autoescape)
    plain_ints = all(
        render_value_in_context(probe, context) == str(probe) for probe in (1234567890, -9876543)
    )
    keys = frozenset(key for _text, key in parts if key is not None)
    return _Compiled(tuple(parts), context, plain_ints, keys)


class ChunkRenderer:
    """Renders OutgoingNotifications like jobs.services.outbox.render_notification, faster.

    Build one per chunk: templates are compiled once per instance (from the engine's
    cached templates, so a changed template is picked up by the next chunk).
    """

    def __init__(self) -> None:
        self._compiled: dict[str, _Compiled | None] = {}

    def _render(self, template_name: str, context: dict[str, Any]) -> str:
        if template_name not in self._compiled:
            self._compiled[template_name] = _compile(template_name)
        compiled = self._compiled[template_name]
        text = compiled.render(context) if compiled is not None else None
        return render_to_string(template_name, context) if text is None else text

    def render(self, item: OutgoingNotification) -> tuple[str, str]:
        """(subject, body): the text render_notification returns for the item."""
        if item.channel == "sms":
            return "", self._render(f"{item.template}.sms.txt", item.context).strip()
        if item.channel != "email":
            raise ValueError(f"unknown channel {item.channel!r}")
        subject = " ".join(self._render(f"{item.template}.subject.txt", item.context).split())
        return subject[:255], self._render(f"{item.template}.txt", item.context)


def queue_chunk_notifications(items: list[OutgoingNotification]) -> int:
    """Queue one chunk's outbox rows in one statement (unnest); returns how many were new.

    The same rows queue_notifications writes (pending, attempts 0, the default retry
    policy's attempts, due now, dedup key unique), inside the caller's transaction, and
    delivery is kicked after commit.
    """
    if not items:
        return 0
    renderer = ChunkRenderer()
    columns: list[list[Any]] = [[], [], [], [], [], []]
    for item in items:
        subject, body = renderer.render(item)
        for column, value in zip(
            columns,
            (item.channel, item.recipient, item.template, subject, body, item.dedup_key),
            strict=True,
        ):
            column.append(value)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            sql.QUEUE_NOTIFICATIONS,
            {
                "channel": columns[0],
                "recipient": columns[1],
                "template": columns[2],
                "subject": columns[3],
                "body": columns[4],
                "dedup_key": columns[5],
                "max_attempts": DEFAULT_RETRY.max_attempts,
                "now": now,
            },
        )
        created = cursor.rowcount
    if created:
        transaction.on_commit(kick_delivery)
    return created
