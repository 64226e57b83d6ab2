"""Admin actions: Match runs now, the others queue a JobRun recorded with the user; purge asks."""

import pytest
from django.urls import reverse

from exchanges.models import Exchange, Reminder
from jobs.models import JobRun

pytestmark = pytest.mark.django_db

URL = reverse("admin:exchanges_exchange_changelist")


def act(client, action: str, *ids: int, **extra):
    return client.post(URL, {"action": action, "_selected_action": list(ids), **extra})


def test_changelist_and_change_page__show_local_date_and_reminders(
    admin_client, make_exchange, make_participants
):
    exchange = make_exchange()
    make_participants(exchange, 3)
    act(admin_client, "match", exchange.pk)

    assert "2026-12-18 18:00 EST" in admin_client.get(URL).content.decode()
    page = admin_client.get(reverse("admin:exchanges_exchange_change", args=[exchange.pk]))
    assert page.status_code == 200 and "2026-12-11 18:00 EST" in page.content.decode()
    exchange.refresh_from_db()
    assert exchange.state == "matched" and Reminder.objects.filter(exchange=exchange).count() == 3


def test_complete_and_send_now__queue_runs_recorded_with_the_admin(admin_client, make_exchange):
    exchange = make_exchange(state="matched")

    act(admin_client, "complete", exchange.pk)
    act(admin_client, "send_reminders_now", exchange.pk)

    runs = {r.job: r for r in JobRun.objects.all()}
    assert runs["exchanges.auto_complete"].kwargs == {
        "exchange_ids": [exchange.pk],
        "include_future": True,
    }
    assert runs["exchanges.send_due_reminders"].kwargs == {"exchange_id": exchange.pk}
    assert {(r.trigger, r.triggered_by, r.status) for r in runs.values()} == {
        ("admin", "admin", "queued")
    }


def test_purge_now__confirmation_page_first_then_queues(admin_client, make_exchange):
    done = make_exchange(state="completed", completed_at="2026-12-20T00:00Z")
    other = make_exchange(state="matched")

    page = act(admin_client, "purge_now", done.pk, other.pk)

    assert page.status_code == 200 and "Yes, purge now" in page.content.decode()
    assert "1 selected exchange(s) are not completed" in page.content.decode()
    assert not JobRun.objects.exists()

    act(admin_client, "purge_now", done.pk, other.pk, confirmed="yes")

    run = JobRun.objects.get()
    assert (run.job, run.kwargs) == ("exchanges.purge_completed", {"exchange_ids": [done.pk]})
    assert Exchange.objects.count() == 2  # deleted by the queued run, not the request
