"""kill -9 a real qcluster in the middle of a reminder sweep, restart, sweep again.

Verified: every due reminder row ends `sent`, each opted-in participant got exactly one
reminder (one outbox row per participant, none twice), nobody else got one.
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from devkit.waiting import wait_for_run
from exchanges.models import Exchange, Match, Participant, Reminder
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job
from tests.reliability.conftest import poll, say, wait_for_lock_free

pytestmark = pytest.mark.e2e
JOB = "exchanges.send_due_reminders"
TEMPLATE = "exchanges/notifications/reminder"


def seed(exchanges: int, people: int) -> int:
    """Matched exchanges, each with one reminder due a minute ago; returns the opted-in count."""
    now = timezone.now()
    rows = Exchange.objects.bulk_create(
        Exchange(
            name=f"Party {i}",
            organizer_email=f"org{i}@example.com",
            timezone="Europe/Berlin",
            exchange_at=datetime(now.year + 1, 12, 18, 18, 0, tzinfo=UTC),
            state=Exchange.State.MATCHED,
        )
        for i in range(exchanges)
    )
    people_rows = Participant.objects.bulk_create(
        Participant(
            exchange=x,
            name=f"Person {j}",
            email=f"p{j}.x{x.pk}@example.com",
            reminder_enabled=j % 10 != 9,  # every tenth opted out
        )
        for x in rows
        for j in range(people)
    )
    # The draw: each exchange's people in a ring (only matched people are reminded).
    Match.objects.bulk_create(
        Match(
            exchange=x,
            giver=people_rows[k * people + j],
            receiver=people_rows[k * people + (j + 1) % people],
        )
        for k, x in enumerate(rows)
        for j in range(people)
    )
    Reminder.objects.bulk_create(
        Reminder(exchange=x, days_before=7, due_at=now - timedelta(minutes=1)) for x in rows
    )
    return Participant.objects.filter(reminder_enabled=True).count()


def test_kill_9_mid_reminder_sweep__each_participant_reminded_once(qcluster, quiet_scheduler):
    exchanges, people = 600, 40
    started = time.monotonic()
    opted_in = seed(exchanges, people)
    say(f"seeded {exchanges} matched exchanges x {people} people ({opted_in:,} opted in), due now")

    (cluster,) = qcluster.start(["default"])
    first = enqueue_job(JOB, trigger="command", triggered_by="crash-test")
    sent = Reminder.objects.filter(status="sent")
    poll(lambda: sent.exists(), timeout=60, what="the first batch to commit", every=0.02)
    qcluster.kill(cluster)
    at_kill = sent.count()
    outbox_at_kill = Notification.objects.filter(template=TEMPLATE).count()
    say(
        f"kill -9 cluster pid {cluster.pid} (run {first.pk}) with {at_kill}/{exchanges} reminder "
        f"rows sent, {outbox_at_kill:,} outbox rows"
    )
    assert 0 < at_kill < exchanges, "the kill must land in the middle of the sweep"
    assert JobRun.objects.get(pk=first.pk).status == "running"

    wait_for_lock_free(f"job:{JOB}")
    qcluster.start(["default"])
    second = wait_for_run(
        enqueue_job(JOB, trigger="command", triggered_by="crash-test").pk, timeout_seconds=120
    )
    first.refresh_from_db()

    assert second.status == "succeeded", second.error
    assert first.status == "failed" and first.error.startswith("worker lost")
    assert Reminder.objects.exclude(status="sent").count() == 0
    outbox = Notification.objects.filter(template=TEMPLATE)
    twice = outbox.values("recipient").annotate(n=Count("id")).filter(n__gt=1).count()
    expected = set(
        Participant.objects.filter(reminder_enabled=True).values_list("email", flat=True)
    )
    got = set(outbox.values_list("recipient", flat=True))
    assert twice == 0
    assert outbox.count() == opted_in
    assert got == expected
    assert second.result["sent"] == exchanges - at_kill
    assert second.result["notifications"] == opted_in - outbox_at_kill
    say(
        f"restart: run {second.pk} sent {second.result['sent']} rows / "
        f"{second.result['notifications']:,} reminders; verified: {exchanges} rows sent, "
        f"{outbox.count():,} reminders = {opted_in:,} opted-in participants, 0 twice, "
        f"no opted-out recipient; killed run {first.pk} recorded lost; "
        f"{time.monotonic() - started:.1f} s"
    )
