"""Requeue touches dead or failed notifications only, never one a worker is sending."""

import threading

import pytest
from django.core import mail
from django.db import connection, transaction
from django.urls import reverse

from devkit.waiting import wait_until
from jobs.models import Notification
from jobs.outbox.notifications import _claim_batch, deliver_due_notifications, requeue_notifications
from tests.admin_helpers import post_action, staff_client

PERMS = [("jobs", "view_notification"), ("jobs", "change_notification")]


def row(key: str, **fields) -> Notification:
    return Notification.objects.create(
        channel="email", recipient=f"{key}@example.com", template="t", subject="s", body="b",
        dedup_key=key, **fields,
    )  # fmt: skip


@pytest.mark.django_db
def test_requeue__a_row_being_sent_is_refused_and_goes_out_once(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    failed = row("failed", status="pending", attempts=1, last_error="SMTP 451")
    assert _claim_batch(10, exclude=[]) == [failed.pk]  # a delivery task is sending it now
    dead = row("dead", status="dead", attempts=4, last_error="SMTP 550")
    sent = row("sent", status="sent", attempts=1)
    fresh = row("fresh", status="pending")
    staff_client(client, "oncall", PERMS)
    url = reverse("admin:jobs_notification_changelist")

    response = post_action(client, url, "requeue", failed.pk, dead.pk, sent.pk, fresh.pk)

    statuses = dict(Notification.objects.values_list("dedup_key", "status"))
    assert statuses == {"failed": "sending", "dead": "pending", "sent": "sent", "fresh": "pending"}
    assert [m.message for m in response.wsgi_request._messages] == [
        "Requeued 1 notification(s); 3 refused (only dead or failed ones are requeued,"
        " never one that is being sent or was sent, nor one past its deliver-before time)"
    ]
    assert Notification.objects.get(pk=dead.pk).requeued_by == "oncall"
    Notification.objects.filter(pk=failed.pk).update(status="sent")  # the worker finishes
    deliver_due_notifications()
    assert sorted(m.to[0] for m in mail.outbox) == ["dead@example.com", "fresh@example.com"]


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_requeue__state_checked_in_the_update_itself():
    """A worker claims the row while the requeue waits on its lock: the requeue skips it."""
    dead = row("dead", status="dead", attempts=4, last_error="SMTP 550")
    claimed = threading.Event()
    release = threading.Event()

    def worker() -> None:
        with transaction.atomic():
            Notification.objects.filter(pk=dead.pk).update(status="sending")
            claimed.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    claimed.wait(10)
    result: list[int] = []
    requeue = threading.Thread(
        target=lambda: (
            result.append(requeue_notifications([dead.pk], actor="x")),
            connection.close(),
        )
    )
    requeue.start()
    wait_until(waiting_on_a_lock, timeout_seconds=10, what="the requeue to wait for the row lock")
    release.set()
    thread.join(10)
    requeue.join(10)
    assert result == [0]
    assert Notification.objects.get(pk=dead.pk).status == "sending"
