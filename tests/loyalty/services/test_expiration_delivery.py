"""A warning that never reached the customer: the points still expire on the promised day,
and the run that voids them says so (history, /health/ attention)."""

from datetime import timedelta

import pytest
import time_machine

from jobs.models import Notification
from jobs.outbox.notifications import deliver_due_notifications, requeue_notifications
from jobs.runner import run_job_now
from jobs.runs.retry import RetryPolicy
from loyalty.models import LoyaltyCard
from tests.loyalty.conftest import NOW

pytestmark = pytest.mark.django_db

NO_WAIT = RetryPolicy(base_seconds=0, jitter=False)


def test_warning_dead_in_the_outbox__expiry_run_counts_it_and_is_flagged(
    settings, program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    with time_machine.travel(NOW, tick=False):
        lost = card_factory(program, points=120, inactive_days=352)  # due 2026-03-15
        told = card_factory(program, points=30, inactive_days=352)
        assert run_job_now("loyalty.expire_points").result["warnings_sent"] == 2
        # The mail server refuses every attempt of that night's first warning: it is dead.
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
        Notification.objects.filter(recipient=told.customer.email).update(status="sent")
        for _ in range(4):
            deliver_due_notifications(policy=NO_WAIT)
    warning = Notification.objects.get(recipient=lost.customer.email)
    assert (warning.status, warning.dead_reason) == ("dead", "failed")

    with time_machine.travel(NOW + timedelta(days=14), tick=False):
        run = run_job_now("loyalty.expire_points")

    # The rule holds: a warning was queued a lead before, so both cards expire.
    assert set(LoyaltyCard.objects.filter(points_balance=0).values_list("pk", flat=True)) == {
        lost.pk,
        told.pk,
    }
    assert run.result["cards_processed"] == 2
    # But staff learn that one customer lost points without ever being told.
    assert run.result["expired_warning_undelivered"] == 1
    assert run.needs_attention
    assert "1 card(s) expired whose warning was never delivered" in run.attention_reason


def test_warning_requeued_days_later__does_not_promise_the_days_it_no_longer_has(
    settings, mailoutbox, program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    with time_machine.travel(NOW, tick=False):
        card = card_factory(program, points=120, inactive_days=352)  # due 2026-03-15
        run_job_now("loyalty.expire_points")
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
        for _ in range(4):
            deliver_due_notifications(policy=NO_WAIT)
    warning = Notification.objects.get(recipient=card.customer.email)
    assert warning.status == "dead"

    # Staff requeue it (as /health/ suggests) once the mail server is back, 10 days later.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(NOW + timedelta(days=10), tick=False):
        assert requeue_notifications([warning.pk], actor="admin") == 1
        assert deliver_due_notifications()["sent"] == 1

    (mail,) = mailoutbox
    assert "will expire on\n2026-03-15" in mail.body
    # Rendered when queued: "14 days from now" would be read on 03-11, 4 days before.
    assert "14 days" not in mail.body
