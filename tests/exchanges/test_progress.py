"""Long loops report running totals as the run's progress (what the run page shows)."""

from datetime import UTC, datetime, timedelta

import pytest

from exchanges.models import Exchange, Match, RateLimit, Reminder
from exchanges.services import purge
from exchanges.services.cleanup import cleanup_rate_limits
from exchanges.services.reminders import send_due_reminders
from jobs.models import JobRun
from jobs.runner import run_job_now
from jobs.runs.current import reset_current_run, set_current_run

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def in_a_run():
    """Run the services as if inside a job (report_progress needs a current run)."""
    run = JobRun.objects.create(job="exchanges.test", trigger="command", status="running")
    token = set_current_run(run)
    yield run
    reset_current_run(token)


def test_purge__reports_exchanges_purged_of_the_initial_count(
    monkeypatch, reports, make_exchange, make_participants
):
    monkeypatch.setattr(purge, "BATCH_SIZE", 2)
    for _ in range(5):
        make_exchange(state="completed", completed_at="2026-10-01T00:00Z")

    run = run_job_now(
        "exchanges.purge_completed",
        kwargs={"exchange_ids": list(Exchange.objects.values_list("pk", flat=True))},
    )

    assert run.status == "succeeded" and run.result["purged"] == 5
    assert [(p["done"], p["total"], p["unit"]) for p in reports] == [
        (0, 5, "exchanges"),
        (2, 5, "exchanges"),
        (4, 5, "exchanges"),
        (5, 5, "exchanges"),
    ]
    run.refresh_from_db()
    assert run.progress == {"done": 5, "total": 5, "unit": "exchanges", "warned": 0}


def test_reminder_sweep__reports_reminders_and_notifications_after_each_batch(
    reports, in_a_run, make_exchange, make_participants
):
    for _ in range(3):
        exchange = make_exchange(state="matched")
        a, b = make_participants(exchange, 2)
        Match.objects.create(exchange=exchange, giver=a, receiver=b)
        Match.objects.create(exchange=exchange, giver=b, receiver=a)
        Reminder.objects.create(exchange=exchange, days_before=1, due_at=NOW - timedelta(minutes=1))

    result = send_due_reminders(now=NOW, batch_size=2)

    assert result["sent"] == 3 and result["notifications"] == 6
    assert reports == [
        {"done": 2, "total": None, "unit": "reminders", "notifications": 4},
        {"done": 3, "total": None, "unit": "reminders", "notifications": 6},
    ]
    in_a_run.refresh_from_db()
    assert in_a_run.progress == reports[-1]


def test_cleanup__reports_rows_deleted_after_each_batch(reports, in_a_run):
    RateLimit.objects.bulk_create(
        RateLimit(key=f"k{i}", expires_at=NOW - timedelta(minutes=1)) for i in range(5)
    )

    assert cleanup_rate_limits(now=NOW, batch_size=2) == {"deleted": 5}
    assert [p["done"] for p in reports] == [2, 4, 5]
    assert {p["unit"] for p in reports} == {"rows"}


def test_cleanup_job__final_progress_on_the_run():
    RateLimit.objects.bulk_create(
        RateLimit(key=f"k{i}", expires_at=datetime.now(UTC) - timedelta(minutes=1))
        for i in range(3)
    )

    run = run_job_now("exchanges.cleanup_rate_limits")

    run.refresh_from_db()
    assert run.result == {"deleted": 3}
    assert run.progress == {"done": 3, "total": None, "unit": "rows"}


def test_services_outside_a_job__report_nothing(reports):
    RateLimit.objects.create(key="k", expires_at=NOW - timedelta(minutes=1))

    assert cleanup_rate_limits(now=NOW) == {"deleted": 1}
    assert reports == []
