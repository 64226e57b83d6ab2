"""Messages that expire: a reminder of a party is never delivered after the party."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from exchanges.models import Exchange, Match
from exchanges.services.reminder_planning import plan_reminders
from exchanges.services.reminders import send_due_reminders
from jobs.models import Notification
from jobs.outbox.notifications import deliver_due_notifications
from tests.admin_helpers import post_action, staff_client

pytestmark = pytest.mark.django_db

PARTY = datetime(2026, 12, 18, 23, 0, tzinfo=UTC)


@pytest.fixture
def one_day_reminder_queued(make_exchange, make_participants) -> Exchange:
    """The 1-day reminder of a party for two, queued by the sweep on time."""
    exchange = make_exchange(exchange_at=PARTY, state=Exchange.State.MATCHED)
    a, b = make_participants(exchange, 2)
    Match.objects.create(exchange=exchange, giver=a, receiver=b)
    Match.objects.create(exchange=exchange, giver=b, receiver=a)
    with time_machine.travel(PARTY - timedelta(days=10), tick=False):
        plan_reminders(exchange_id=exchange.pk)
    Exchange.objects.filter(pk=exchange.pk).update(reminder_days=[1])
    with time_machine.travel(PARTY - timedelta(days=1), tick=False):
        assert send_due_reminders()["notifications"] >= 2
    return exchange


def test_outbox_down_30_hours__the_reminder_is_dead_too_late_never_sent(
    one_day_reminder_queued, mailoutbox
):
    one_day = f"exchanges:reminder:{one_day_reminder_queued.pk}:1:"
    rows = Notification.objects.filter(dedup_key__startswith=one_day)
    assert {r.deliver_before for r in rows} == {PARTY}

    with time_machine.travel(PARTY - timedelta(days=1) + timedelta(hours=30), tick=False):
        result = deliver_due_notifications()

    assert result["sent"] == 0 and result["too_late"] == rows.count() == 2
    assert mailoutbox == []
    for row in rows.all():
        assert (row.status, row.dead_reason) == ("dead", "too late")
        assert row.last_error == "too late: not delivered before 2026-12-18 23:00 UTC"


def test_outbox_back_before_the_party__the_reminder_is_sent(one_day_reminder_queued, mailoutbox):
    with time_machine.travel(PARTY - timedelta(hours=1), tick=False):
        result = deliver_due_notifications()

    assert result["too_late"] == 0 and len(mailoutbox) == result["sent"] >= 2
    assert all("takes place on Friday 18 December 2026" in m.body for m in mailoutbox)


def test_admin__shows_too_late_and_refuses_to_requeue_it(client, one_day_reminder_queued):
    with time_machine.travel(PARTY + timedelta(hours=1), tick=False):
        deliver_due_notifications()
        operator = staff_client(
            client, "oncall", [("jobs", "view_notification"), ("jobs", "change_notification")]
        )
        url = reverse("admin:jobs_notification_changelist")
        page = operator.get(url, {"dead_reason": "too late"}).content.decode()
        late = Notification.objects.filter(dead_reason="too late")
        assert late.count() >= 2 and "too late" in page
        assert all(f"/admin/jobs/notification/{row.pk}/change/" in page for row in late)

        response = post_action(operator, url, "requeue", *late.values_list("pk", flat=True))

    assert "Requeued 0 notification(s)" in [m.message for m in response.wsgi_request._messages][0]
    assert set(late.values_list("status", flat=True)) == {"dead"}
