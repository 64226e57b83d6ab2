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
