"""The chunk renderer writes exactly what the outbox's own rendering would, and queues once."""

from datetime import UTC, datetime

import pytest
from django.db import transaction

from jobs.models import Notification
from jobs.services.outbox import OutgoingNotification, queue_notifications, render_notification
from loyalty.services.notifications import (
    EXPIRED_TEMPLATE,
    WARNING_TEMPLATE,
    CardRow,
    ChunkRenderer,
    expired_notifications,
    queue_chunk_notifications,
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


@pytest.mark.parametrize("merchant", ["Demo Coffee", "Tom & Jerry's <Bar>", "  Café\tLuna  "])
def test_chunk_renderer__matches_the_outbox_rendering_of_every_template(merchant):
    items = all_items(merchant)
    assert {(i.template, i.channel) for i in items} == {
        (t, c) for t in (WARNING_TEMPLATE, EXPIRED_TEMPLATE) for c in ("email", "sms")
    }
    renderer = ChunkRenderer()
    for item in items:
        assert renderer.render(item) == render_notification(item), item


def test_chunk_renderer__falls_back_to_the_engine_for_templates_with_tags(settings, tmp_path):
    folder = tmp_path / "loyalty" / "notifications"
    folder.mkdir(parents=True)
    (folder / "points_expired.sms.txt").write_text(
        "{{ merchant_name|upper }}: {% if points == 1 %}one point{% else %}{{ points }} points"
        "{% endif %} gone"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    for item in all_items("Shop"):
        assert ChunkRenderer().render(item) == render_notification(item)
    sms = [i for i in all_items("Shop") if i.channel == "sms" and i.template == EXPIRED_TEMPLATE]
    assert ChunkRenderer().render(sms[0])[1] == "SHOP: 999 points gone"


@pytest.mark.django_db(transaction=True)
def test_queue_chunk_notifications__writes_the_outbox_rows_queue_notifications_writes():
    items = all_items("Demo Coffee")
    with transaction.atomic():
        assert queue_chunk_notifications(items) == len(items)
    fields = (
        "channel",
        "recipient",
        "template",
        "subject",
        "body",
        "dedup_key",
        "status",
        "attempts",
        "max_attempts",
        "last_error",
        "requeued_by",
        "claimed_at",
        "sent_at",
    )
    ours = list(Notification.objects.order_by("dedup_key").values_list(*fields))
    Notification.objects.all().delete()
    with transaction.atomic():
        assert queue_notifications(items, kick=False) == len(items)
    assert list(Notification.objects.order_by("dedup_key").values_list(*fields)) == ours

    with transaction.atomic():  # the dedup key makes queueing twice a no-op
        assert queue_chunk_notifications(items) == 0
    assert Notification.objects.count() == len(items)
