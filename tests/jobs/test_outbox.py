"""Outbox: dedup on queue, delivered once even when delivery runs twice, dead then requeued."""

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.utils import timezone

from jobs.health.checks import check_outbox
from jobs.models import Notification
from jobs.outbox.notifications import (
    OutgoingNotification,
    _claim_batch,
    deliver_due_notifications,
    queue_notification,
    queue_notifications,
    requeue_notifications,
)
from jobs.runs.retry import RetryPolicy
from tests.reliability.smtp_sink import SmtpSink
from tests.reliability.smtp_sink import _Handler as _SinkHandler

NO_WAIT = RetryPolicy(base_seconds=0, jitter=False)


class RendezvousBackend(EmailBackend):
    """locmem, except that each delivery's first send waits until the other one's is due too.

    So the two deliveries of the concurrency test hold claimed batches at the same time,
    however the machine schedules the threads; a claim that blocked on the other's rows
    would never get there, and the wait would fail the send.
    """

    rendezvous: threading.Barrier

    def send_messages(self, messages):
        if not getattr(self, "_met", False):
            self._met = True
            self.rendezvous.wait()
        return super().send_messages(messages)


def demo_item(recipient: str = "ops@example.com", key: str = "k1") -> OutgoingNotification:
    return OutgoingNotification(
        channel="email",
        recipient=recipient,
        template="devkit/notifications/demo_result",
        dedup_key=key,
        context={"items": 3, "checksum": 3},
    )


@pytest.mark.django_db
def test_queue__renders_templates_and_dedups():
    assert queue_notification(demo_item()) is True
    assert queue_notification(demo_item()) is False

    row = Notification.objects.get()
    assert row.subject == "Demo job finished: 3 items"
    assert "checksum is 3" in row.body
    assert row.status == Notification.Status.PENDING


@pytest.mark.django_db
def test_queue__sms_uses_sms_template():
    queue_notification(
        OutgoingNotification(
            channel="sms",
            recipient="+15550100",
            template="devkit/notifications/demo_result",
            dedup_key="s1",
            context={"items": 2, "checksum": 1},
        )
    )
    assert Notification.objects.get().body == "Demo job: 2 items, checksum 1."


@pytest.mark.django_db(transaction=True)
def test_delivery_run_twice_concurrently__sends_each_row_once(settings):
    settings.EMAIL_BACKEND = "tests.jobs.test_outbox.RendezvousBackend"
    RendezvousBackend.rendezvous = threading.Barrier(2, timeout=30)
    queue_notifications([demo_item(f"u{i}@example.com", f"k{i}") for i in range(40)], kick=False)
    results = []

    def deliver() -> None:
        try:
            results.append(deliver_due_notifications(batch_size=5))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deliver_due_notifications()  # a third, late run finds nothing to send

    assert sorted(m.to[0] for m in mail.outbox) == sorted(f"u{i}@example.com" for i in range(40))
    assert sum(r["sent"] for r in results) == 40
    assert all(r["sent"] > 0 for r in results)  # both really delivered, at the same time
    assert Notification.objects.filter(status="sent").count() == 40


@pytest.mark.django_db
def test_delivery_failure__retries_then_dead_then_requeue_sends(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
    queue_notification(demo_item())

    outcomes = [deliver_due_notifications(policy=NO_WAIT) for _ in range(5)]

    row = Notification.objects.get()
    assert [o["retrying"] for o in outcomes[:3]] == [1, 1, 1]
    assert outcomes[3]["dead"] == 1 and outcomes[4] == {
        "sent": 0,
        "retrying": 0,
        "dead": 0,
        "too_late": 0,
    }
    assert row.status == Notification.Status.DEAD and row.attempts == 4
    assert "ConnectionRefusedError" in row.last_error

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert requeue_notifications([row.pk], actor="admin") == 1
    assert deliver_due_notifications()["sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.requeued_by, len(mail.outbox)) == ("sent", "admin", 1)
    assert requeue_notifications([row.pk], actor="admin") == 0  # sent rows stay sent


class _SlowHandler(_SinkHandler):
    """Takes `server.accept_seconds` to accept each message (a slow relay, TLS far away)."""

    def reply(self, line: str) -> None:
        if line.startswith("250 queued"):
            time.sleep(self.server.accept_seconds)
        super().reply(line)


@pytest.mark.django_db
def test_slow_smtp__a_delivery_run_stops_at_its_budget_and_hands_back_what_it_did_not_reach(
    settings,
):
    """At about a second a message, a batch of 100 takes minutes: a run must stop at its
    budget (its job is killed at `timeout_seconds`, leaving claimed rows `sending` with
    an attempt spent, for `OUTBOX_SENDING_TIMEOUT_SECONDS`, and the row in hand sent twice)."""
    sink = SmtpSink()
    sink.RequestHandlerClass = _SlowHandler
    sink.accept_seconds = 0.5
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.server_address[1]
    queue_notifications([demo_item(f"u{i}@example.com", f"k{i}") for i in range(12)], kick=False)
    rows = Notification.objects.all()

    with sink:
        started = time.monotonic()
        first = deliver_due_notifications(time_budget_seconds=1)
        elapsed = time.monotonic() - started
        waiting = sorted(
            rows.exclude(status="sent").values_list("status", "attempts", "last_error")
        )
        rest = deliver_due_notifications()

    # the budget, plus the one send in hand and room for a loaded machine; all 12: 6 s
    assert elapsed < 4.5, f"a run with a 1 s budget took {elapsed:.1f} s"
    assert 1 <= first["sent"] <= 4
    # What it did not reach waits, untouched: pending, no attempt spent, no error.
    assert waiting == [("pending", 0, "")] * (12 - first["sent"])
    assert rest["sent"] == 12 - first["sent"]
    assert sorted(r for rcpts, _ in sink.messages for r in rcpts) == sorted(
        f"u{i}@example.com" for i in range(12)
    )


@pytest.mark.django_db
def test_worker_killed_while_sending__claimed_again_until_its_attempts_are_spent(
    settings, time_machine
):
    """A row whose delivery kills its worker (a send that hangs past the job's hard limit)
    is claimed again after OUTBOX_SENDING_TIMEOUT_SECONDS: it may go out again each time,
    so its attempts bound it like any failure: dead, for staff to requeue or not."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    time_machine.move_to("2026-03-01T10:00:00+00:00", tick=False)
    queue_notifications([demo_item("early@example.com", "k1")], kick=False)
    row = Notification.objects.get()
    claims = []
    for minute in (0, 11, 22, 33):  # four claims, each one's worker killed mid-send
        time_machine.move_to(f"2026-03-01T10:{minute:02d}:00+00:00", tick=False)
        claims.append(_claim_batch(10, exclude=[]))
    row.refresh_from_db()
    assert claims == [[row.pk]] * 4
    assert (row.status, row.attempts) == ("sending", 4)

    time_machine.move_to("2026-03-01T10:44:00+00:00", tick=False)
    result = deliver_due_notifications()

    row.refresh_from_db()
    assert (result["sent"], result["dead"], len(mail.outbox)) == (0, 1, 0)
    assert (row.status, row.dead_reason) == ("dead", "failed")
    assert "worker lost while sending attempt 4 of 4" in row.last_error
    assert requeue_notifications([row.pk], actor="oncall") == 1  # staff decide


@pytest.mark.django_db
def test_sms_backend_mistyped__email_and_alerts_still_go_out_and_the_sms_rows_say_why(settings):
    """SMS_BACKEND is an environment variable an operator types: a wrong one fails the SMS
    rows (retried, then dead, with the reason), not every email and staff alert too."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "jobs.sms.HttpSMSBackend"  # the class is HTTPSMSBackend
    queue_notifications(
        [
            demo_item("ops@example.com", "mail"),
            OutgoingNotification(
                channel="sms",
                recipient="+15550100",
                template="devkit/notifications/demo_result",
                dedup_key="sms",
                context={"items": 2, "checksum": 1},
            ),
        ],
        kick=False,
    )

    result = deliver_due_notifications()

    assert (result["sent"], result["retrying"], [m.to for m in mail.outbox]) == (
        1,
        1,
        [["ops@example.com"]],
    )
    sms = Notification.objects.get(dedup_key="sms")
    assert sms.status == "pending" and "HttpSMSBackend" in sms.last_error


@pytest.mark.django_db
def test_health_outbox__warns_about_dead_rows_staff_can_requeue_not_about_ones_they_cannot(
    settings, time_machine
):
    """A reminder dead "too late" (or dead and then past its deadline) cannot be requeued and
    is never pruned: counted by /health/, it would warn for ever, hiding the next real one."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    time_machine.move_to("2026-03-01T10:00:00+00:00", tick=False)
    at = timezone.now
    queue_notifications(
        [
            replace(
                demo_item("late@example.com", "late"), deliver_before=at() + timedelta(hours=1)
            ),
            replace(
                demo_item("failed@example.com", "failed"), deliver_before=at() + timedelta(days=1)
            ),
        ],
        kick=False,
    )
    Notification.objects.filter(dedup_key="failed").update(
        status="dead", dead_reason="failed", attempts=4, last_error="SMTPRecipientsRefused"
    )
    time_machine.move_to("2026-03-01T12:00:00+00:00", tick=False)  # the cluster was down
    assert deliver_due_notifications()["too_late"] == 1
    assert check_outbox().detail == "1 dead notification(s) (requeue in admin)"

    time_machine.move_to("2026-03-03T12:00:00+00:00", tick=False)  # nobody requeued it
    assert requeue_notifications(Notification.objects.values_list("pk", flat=True), actor="x") == 0
    assert check_outbox().state == "ok"
