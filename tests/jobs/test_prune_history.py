"""jobs.prune_history deletes exactly what is past retention, in batches."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Task

from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job, execute_queued_run, run_job_now

pytestmark = pytest.mark.django_db


def make_runs(*, count: int, age_days: int, status: str = "succeeded") -> None:
    finished = timezone.now() - timedelta(days=age_days)
    JobRun.objects.bulk_create(
        JobRun(job="devkit.demo_job", trigger="schedule", status=status, finished_at=finished)
        for _ in range(count)
    )


def make_tasks(*, count: int, age_days: int) -> None:
    stopped = timezone.now() - timedelta(days=age_days)
    Task.objects.bulk_create(
        Task(
            id=f"t{age_days}-{i}",
            name=f"t{age_days}-{i}",
            func="x.y",
            started=stopped,
            stopped=stopped,
            success=False,
        )
        for i in range(count)
    )


def test_prune_history__deletes_only_rows_older_than_retention_in_batches():
    make_runs(count=5, age_days=91)
    make_runs(count=3, age_days=89)
    JobRun.objects.create(job="devkit.demo_job", trigger="schedule", status="running")
    make_tasks(count=4, age_days=100)
    make_tasks(count=2, age_days=10)
    Notification.objects.create(
        channel="email",
        recipient="a@example.com",
        template="t",
        body="b",
        dedup_key="old",
        status="sent",
        sent_at=timezone.now() - timedelta(days=120),
    )
    Notification.objects.create(
        channel="email",
        recipient="a@example.com",
        template="t",
        body="b",
        dedup_key="dead",
        status="dead",
    )

    run = run_job_now("jobs.prune_history", kwargs={})
    from jobs.runs.history import prune_history

    again = prune_history(batch_size=2)

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.result["job_runs_deleted"] == 5
    assert run.result["queue_tasks_deleted"] == 4
    assert run.result["notifications_sent_deleted"] == 1
    assert again["job_runs_deleted"] == 0 and again["job_runs_batches"] == 1
    # recent runs, the running one, the prune run itself, recent tasks and dead rows stay
    assert JobRun.objects.count() == 3 + 1 + 1
    assert Task.objects.count() == 2
    assert list(Notification.objects.values_list("dedup_key", flat=True)) == ["dead"]


def test_prune_history__batches_until_done():
    make_runs(count=7, age_days=200)
    from jobs.runs.history import prune_history

    result = prune_history(batch_size=3)

    assert result["job_runs_deleted"] == 7 and result["job_runs_batches"] == 3


def test_prune_history__rejects_nonsense_retention():
    from jobs.runs.history import prune_history

    with pytest.raises(ValueError, match="at least 1"):
        prune_history(older_than_days=0)


@pytest.mark.django_db(transaction=True)
def test_prune_history__runs_an_alert_or_a_later_run_points_at(time_machine, settings):
    """Months of operation: a run that failed for good 100 days ago opened an alert, the next
    day's success resolved it, and an operator's Retry today points at a run failed 95 days
    ago; another job's alert is still open. Pruning deletes the old runs and keeps the alerts
    and the recent run (their links to pruned runs cleared), keeps the runs an open alert
    names (what staff still have to read), and never fails on those references."""
    from jobs.models import Alert
    from jobs.outbox.alerts import scan_alerts

    settings.JOBS_ALERT_EMAILS = ("oncall@example.com",)
    time_machine.move_to("2026-09-01T10:00:00+00:00", tick=False)
    failed = run_job_now("tests.maybe_fail", kwargs={"fail": True})
    open_failure = run_job_now("tests.permanent_no_retry")
    scan_alerts(watchdog=False)
    time_machine.move_to("2026-09-02T10:00:00+00:00", tick=False)
    fixed = run_job_now("tests.maybe_fail")
    time_machine.move_to("2026-09-06T10:00:00+00:00", tick=False)
    retried = run_job_now("tests.maybe_fail", kwargs={"fail": True})
    time_machine.move_to("2026-12-10T10:00:00+00:00", tick=False)
    child = enqueue_job("tests.maybe_fail", kwargs={}, trigger="admin", parent=retried)
    execute_queued_run(child.pk)  # the operator's Retry today resolves the alert it opened

    run = run_job_now("jobs.prune_history", kwargs={})

    assert run.status == "succeeded", run.error
    assert not JobRun.objects.filter(pk__in=[failed.pk, fixed.pk, retried.pk]).exists()
    child.refresh_from_db()
    assert child.parent_id is None
    first, second = Alert.objects.filter(job="tests.maybe_fail").order_by("id")
    assert (first.first_run_id, first.last_run_id, first.resolved_by_id) == (None, None, None)
    assert (second.first_run_id, second.resolved_by_id) == (None, child.pk)
    still_open = Alert.objects.get(job="tests.permanent_no_retry")
    assert still_open.resolved_at is None and still_open.first_run_id == open_failure.pk
    assert JobRun.objects.filter(pk=open_failure.pk).exists()
