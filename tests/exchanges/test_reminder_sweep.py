"""The sweep sends each due reminder once, only to opted-in active people; late ones are missed."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from exchanges.models import Exchange, Match, Reminder
from exchanges.services.reminders import send_due_reminders
from jobs.models import Notification

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 11, 23, 0, tzinfo=UTC)


@pytest.fixture
def matched(make_exchange, make_participants):
    exchange = make_exchange(state=Exchange.State.MATCHED, exchange_at=NOW + timedelta(days=7))
    active = make_participants(exchange, 3)
    opted_out = make_participants(exchange, 1, prefix="quiet", reminder_enabled=False)[0]
    withdrawn = make_participants(exchange, 1, prefix="gone", withdrawn_at=NOW)[0]
    # The draw: a cycle through everyone active; a late joiner has no match yet.
    ring = [*active, opted_out]
    for giver, receiver in zip(ring, ring[1:] + ring[:1], strict=True):
        Match.objects.create(exchange=exchange, giver=giver, receiver=receiver)
    make_participants(exchange, 1, prefix="late")
    return exchange, active, opted_out, withdrawn


def reminder(exchange, *, days_before=7, due_at=NOW, **fields) -> Reminder:
    return Reminder.objects.create(
        exchange=exchange, days_before=days_before, due_at=due_at, **fields
    )


@time_machine.travel(NOW + timedelta(minutes=1), tick=False)
def test_sweep_twice__each_participant_gets_one_reminder(matched):
    exchange, active, opted_out, withdrawn = matched
    row = reminder(exchange)

    first = send_due_reminders()
    row.status = Reminder.Status.SCHEDULED  # as if a second sweep replayed the same row
    row.save()
    second = send_due_reminders()

    assert first == {
        "sent": 1,
        "notifications": 3,
        "recipients": 3,
        "missed": 0,
        "missed_ids": [],
        "skipped_not_matched": 0,
    }
    assert (second["sent"], second["notifications"]) == (1, 0)
    sent = Notification.objects.filter(template="exchanges/notifications/reminder")
    assert sorted(sent.values_list("recipient", flat=True)) == sorted(p.email for p in active)
    assert opted_out.email not in {n.recipient for n in sent}
    assert withdrawn.email not in {n.recipient for n in sent}
    assert not any(n.recipient.startswith("late") for n in sent)  # not matched: not reminded
    assert "You are giving a gift to Person 1." in sent.get(recipient=active[0].email).body
    mail = sent.get(recipient=active[0].email)
    local = exchange.local_exchange_at.strftime("%A %d %B %Y, %H:%M %Z")
    assert mail.subject == f"Reminder: Office party on {local}"
    assert f"takes place on {local}." in mail.body and " days" not in mail.body  # true if late
    row.refresh_from_db()
    assert (row.status, row.sent_at, row.recipients) == ("sent", NOW + timedelta(minutes=1), 3)


@time_machine.travel(NOW + timedelta(minutes=1), tick=False)
def test_sweep__not_yet_due_reminders_are_left_alone(matched):
    exchange = matched[0]
    later = reminder(exchange, days_before=3, due_at=NOW + timedelta(days=4))

    assert send_due_reminders()["sent"] == 0
    later.refresh_from_db()
    assert later.status == "scheduled" and not Notification.objects.exists()


def test_sweep__late_beyond_grace_is_missed_within_grace_is_sent(matched):
    exchange = matched[0]
    late = reminder(exchange, days_before=7, due_at=NOW - timedelta(minutes=61))
    on_time = reminder(exchange, days_before=3, due_at=NOW - timedelta(minutes=59))

    with time_machine.travel(NOW, tick=False):
        result = send_due_reminders()

    late.refresh_from_db()
    on_time.refresh_from_db()
    assert (late.status, on_time.status) == ("missed", "sent")
    assert (result["missed"], result["missed_ids"], result["sent"]) == (1, [late.pk], 1)
    assert Notification.objects.count() == 3


@time_machine.travel(NOW, tick=False)
def test_sweep__reminders_of_completed_exchanges_are_skipped(matched):
    exchange = matched[0]
    row = reminder(exchange)
    Exchange.objects.filter(pk=exchange.pk).update(state="completed", completed_at=NOW)

    result = send_due_reminders()

    row.refresh_from_db()
    assert (row.status, result["skipped_not_matched"], result["sent"]) == ("skipped", 1, 0)
    assert not Notification.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_sweep__dry_run_counts_and_changes_nothing(matched):
    exchange = matched[0]
    reminder(exchange)
    reminder(exchange, days_before=3, due_at=NOW - timedelta(hours=2))

    assert send_due_reminders(dry_run=True) == {
        "dry_run": True,
        "due": 1,
        "would_miss": 1,
        "would_skip": 0,
    }
    assert set(Reminder.objects.values_list("status", flat=True)) == {"scheduled"}
