"""Loyalty's notifications: one per reachable card, rendered by the template engine, unescaped."""

from datetime import UTC, date, datetime

import pytest
from django.db import transaction

from jobs.models import Notification
from jobs.outbox.notifications import OutgoingNotification, queue_notifications, render_notification
from loyalty.selectors import ExpirationDay
from loyalty.services.notifications import (
    EXPIRED_TEMPLATE,
    CardRow,
    expired_notifications,
    warning_notifications,
)

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
#: A 365-day program with a 14-day lead, on the night of NOW, for a merchant in UTC.
DAY = ExpirationDay(
    zone="UTC", today=date(2026, 3, 1), days=365, lead_days=14, warn_before=NOW, expire_before=NOW
)


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
        *warning_notifications(rows(), merchant_name=merchant, day=DAY),
        *expired_notifications(rows(), merchant_name=merchant, expiration_days=365),
    ]


def test_notifications__one_per_reachable_card_email_first_keyed_by_card_and_cycle():
    items = all_items("Demo Coffee")

    # 5 cards, all reachable (even rows by email, odd by SMS), warned and expired.
    assert [(i.channel, i.recipient) for i in items[:5]] == [
        ("email", "c0@example.com"),
        ("sms", "+15550001"),
        ("email", "c2@example.com"),
        ("sms", "+15550003"),
        ("email", "c4@example.com"),
    ]
    # The warning's key names the cycle and the day it promises.
    assert items[0].dedup_key == "points_expiring:1:20250310T083000:20260315"
    assert items[5].dedup_key == "points_expired:1:20250310T083000"
    # Due 2026-03-11 but warned on 03-01: the full 14 days, to the day.
    assert items[1].context["expiration_date"] == "2026-03-15"
    unreachable = rows()[0]._replace(email="", phone="")
    assert expired_notifications([unreachable], merchant_name="x", expiration_days=1) == []


def test_rendering__sms_stripped_and_subject_on_one_line(template_override):
    template_override(
        f"{EXPIRED_TEMPLATE}.subject.txt", "  {{ merchant_name }}:\n {{ points }}  pts\n"
    )
    items = all_items("Demo Coffee")
    email = next(i for i in items if i.template == EXPIRED_TEMPLATE and i.channel == "email")
    sms = next(i for i in items if i.template == EXPIRED_TEMPLATE and i.channel == "sms")

    assert render_notification(email)[0] == "Demo Coffee: 1 pts"
    subject, body = render_notification(sms)
    assert subject == "" and body == body.strip() and body.startswith("Demo Coffee: 999 points")


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
