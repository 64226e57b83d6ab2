"""Loyalty's notifications render (fast path) exactly as the template engine would, unescaped."""

from datetime import UTC, datetime

import pytest
from django.db import transaction

from jobs.models import Notification
from jobs.services.notification_render import notification_engine
from jobs.services.outbox import OutgoingNotification, queue_notifications, render_notification
from loyalty.services.notifications import (
    EXPIRED_TEMPLATE,
    WARNING_TEMPLATE,
    CardRow,
    expired_notifications,
    warning_notifications,
)

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def rows() -> list[CardRow]:
    names = ["Ann", "O'Brien & <Sons>", 'Zoë "Z" Ünal', "  spaced  name ", "Line\nbreak"]
    return [
        CardRow(
            card_id=i + 1,
            number=f"C{i:08d}",
            points=points,
            last_activity_at=datetime(2025, 3, 10 + i, 8, 30, tzinfo=UTC),
            customer_name=name,
            email=f"c{i}@example.com" if i % 2 == 0 else "",
            phone="" if i % 2 == 0 else f"+1555000{i}",
        )
        for i, (name, points) in enumerate(zip(names, [1, 999, 1000, 123456, 0], strict=True))
    ]


def all_items(merchant: str) -> list[OutgoingNotification]:
    return [
        *warning_notifications(rows(), merchant_name=merchant, expiration_days=365, now=NOW),
        *expired_notifications(rows(), merchant_name=merchant, expiration_days=365),
    ]


def engine_render(item: OutgoingNotification) -> tuple[str, str]:
    """The slow, obviously right rendering: the template engine, template by template."""

    def render(name: str) -> str:
        return notification_engine().get_template(name).render(item.context)

    if item.channel == "sms":
        return "", render(f"{item.template}.sms.txt").strip()
    subject = " ".join(render(f"{item.template}.subject.txt").split())
    return subject[:255], render(f"{item.template}.txt")


@pytest.mark.parametrize("merchant", ["Demo Coffee", "Tom & Jerry's <Bar>", "  Café\tLuna  "])
def test_rendering__matches_the_engine_for_every_loyalty_template(merchant):
    items = all_items(merchant)
    assert {(i.template, i.channel) for i in items} == {
        (t, c) for t in (WARNING_TEMPLATE, EXPIRED_TEMPLATE) for c in ("email", "sms")
    }
    for item in items:
        assert render_notification(item) == engine_render(item), item


def test_rendering__plain_text_is_not_html_escaped():
    (item,) = [
        i
        for i in all_items("Tom & Jerry's <Bar>")
        if i.channel == "email"
        and i.template == EXPIRED_TEMPLATE
        and i.recipient == "c2@example.com"
    ]
    subject, body = render_notification(item)
    assert "Tom & Jerry's <Bar>" in subject + body
    assert "&amp;" not in subject + body and "&#x27;" not in body


@pytest.mark.django_db(transaction=True)
def test_queue_notifications__writes_each_row_once():
    items = all_items("Demo Coffee")
    with transaction.atomic():
        assert queue_notifications(items, kick=False) == len(items)
    with transaction.atomic():  # the dedup key makes queueing twice a no-op
        assert queue_notifications(items, kick=False) == 0
    assert Notification.objects.count() == len(items)
    row = Notification.objects.get(dedup_key=items[0].dedup_key)
    assert (row.subject, row.body) == render_notification(items[0])


@pytest.mark.django_db
@pytest.mark.parametrize("chunk_size", [2, 500])
def test_expire_points__sql_rendering_writes_exactly_the_rows_python_rendering_writes(
    frozen_now, program_factory, card_factory, chunk_size
):
    """The statement-rendered outbox rows equal `render_notification`'s, byte for byte."""
    from loyalty.models import Merchant
    from loyalty.services.expiration import expire_points

    program = program_factory(expiration_days=365)
    Merchant.objects.filter(pk=program.merchant_id).update(
        name="Tom & Jerry's\u00a0\u2028Café <b> " + "x  " * 50  # runs collapse
    )
    names = ["Ann", "O'Brien & <Sons>", 'Zoë "Z"\tÜnal', "  spaced  name ", "Line\nbreak\u3000"]
    for i, name in enumerate(names * 2):
        contact = {0: {}, 1: {"email": "", "phone": f"+1555{i:07d}"}, 2: {"email": ""}}[i % 3]
        card = card_factory(program, points=1000 * i + 7, inactive_days=355 + i * 3, **contact)
        card.customer.name = name
        card.customer.save()

    def outbox_rows(*, render_in_sql: bool) -> tuple[dict, list[tuple]]:
        with transaction.atomic():
            result = expire_points(chunk_size=chunk_size, render_in_sql=render_in_sql)
            written = list(
                Notification.objects.order_by("dedup_key").values_list(
                    "channel", "recipient", "template", "subject", "body", "dedup_key", "status"
                )
            )
            transaction.set_rollback(True)
        return result, written

    in_sql, rows_sql = outbox_rows(render_in_sql=True)
    in_python, rows_python = outbox_rows(render_in_sql=False)

    assert in_sql == in_python
    assert (in_sql["warnings_sent"], in_sql["cards_processed"]) == (4, 6)
    assert len(rows_sql) == 7  # 10 cards, 3 with nobody to tell
    assert {row[0] for row in rows_sql} == {"email", "sms"}
    assert rows_sql == rows_python
