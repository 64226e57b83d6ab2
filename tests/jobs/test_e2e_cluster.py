"""End to end on real `manage.py qcluster` processes and the committed test database.

django-q2's scheduler wakes every 30 s, so the tests that go through a Schedule
(cron firing, delayed retry) take about that long; they poll, never sleep blindly.
"""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Schedule

from devkit.waiting import wait_for_run, wait_until
from jobs.models import JobRun, Notification
from jobs.outbox.notifications import OutgoingNotification, queue_notifications
from jobs.queue.schedules import sync_schedules
from jobs.runner import enqueue_job
from jobs.runs import lifecycle
from tests.live_run import lease_holder

pytestmark = pytest.mark.e2e

SCHEDULER_WAIT = 45  # the scheduler runs at start-up; room for one more 30 s pass


def test_scheduled_job_fires_and_is_recorded(qcluster):
    sync_schedules()
    slot = timezone.now() - timedelta(seconds=1)
    assert Schedule.objects.filter(name="tests.tick").update(next_run=slot) == 1
    qcluster.start(["default"], scheduler_at_start=True)

    run = wait_until(
        lambda: JobRun.objects.filter(job="tests.tick", status="succeeded").first(),
        timeout_seconds=SCHEDULER_WAIT,
        what="the cron schedule to fire",
    )

    assert (run.trigger, run.result, run.attempt) == ("schedule", {"tick": True}, 1)
    assert run.task_id and run.pid and run.scheduled_for == slot
    # moved past the slot it fired; not "> now": a minute boundary can pass before this line
    assert Schedule.objects.get(name="tests.tick").next_run > slot
    assert JobRun.objects.filter(job="tests.tick", scheduled_for=slot).count() == 1


def test_two_concurrent_runs__one_succeeds_one_is_skipped(qcluster):
    runs = [enqueue_job("tests.sleep", kwargs={"seconds": 3}, trigger="command") for _ in range(2)]
    qcluster.start(["default"])

    finished = [wait_for_run(r.pk, timeout_seconds=60) for r in runs]

    assert sorted(r.status for r in finished) == ["skipped", "succeeded"]
    skipped = next(r for r in finished if r.status == "skipped")
    assert "lock job:tests.sleep is held by run:" in skipped.result["reason"]


def test_killed_worker__its_lock_frees_at_once_and_the_job_runs_again(qcluster):
    (first_cluster,) = qcluster.start(["default"])
    stuck = enqueue_job("tests.sleep", kwargs={"seconds": 120}, trigger="command")
    # claimed first, then the lease is taken: wait for the lease, not just the status
    wait_until(
        lambda: (lease_holder("job:tests.sleep") or ("",))[0] == f"run:{stuck.pk}",
        timeout_seconds=30,
        what="the long run to take its lease",
    )
    assert JobRun.objects.get(pk=stuck.pk).status == "running"

    qcluster.kill(first_cluster)  # kill -9: no cleanup, the lease row is left behind
    wait_until(
        lambda: not lifecycle.lease_held("job:tests.sleep"),
        timeout_seconds=10,
        what="the server to end the dead worker's session",
    )
    qcluster.start(["default"])
    again = enqueue_job("tests.sleep", kwargs={"seconds": 0.1}, trigger="command")

    again = wait_for_run(again.pk, timeout_seconds=60)
    stuck.refresh_from_db()
    assert again.status == "succeeded"
    assert stuck.status == "failed" and stuck.error.startswith("worker lost")


def test_failing_job__retried_with_backoff_then_failed_after_max_attempts(qcluster):
    first = enqueue_job("tests.always_fail", kwargs={"message": "disk full"}, trigger="command")
    qcluster.start(["default"])

    first = wait_for_run(first.pk, timeout_seconds=30)
    retry = JobRun.objects.get(parent=first)
    # The retry is a one-off schedule: once it is due, a second cluster's scheduler fires
    # it on start-up.
    wait_until(
        lambda: timezone.now() >= retry.scheduled_for, timeout_seconds=5, what="the retry's slot"
    )
    qcluster.start(["default"], scheduler_at_start=True)
    retry = wait_for_run(retry.pk, timeout_seconds=SCHEDULER_WAIT)

    assert (first.status, first.attempt) == ("failed", 1)
    assert first.result["retry_run_id"] == retry.pk
    assert 0 <= first.result["retry_in_seconds"] <= 1  # base 1 s, full jitter
    assert (retry.status, retry.attempt, retry.trigger) == ("failed", 2, "retry")
    assert retry.result == {"retries_exhausted": True}
    assert retry.error == "RuntimeError: disk full"
    # Due when the first failed (its delay is jittered from 0 s), started after both.
    assert retry.started_at >= max(retry.scheduled_for, first.finished_at)
    assert JobRun.objects.filter(job="tests.always_fail").count() == 2


def test_outbox_row_is_sent_once_when_delivery_runs_twice(qcluster, tmp_path: Path):
    recipients = [f"user{i}@example.com" for i in range(30)]
    queue_notifications(
        [
            OutgoingNotification(
                channel="email",
                recipient=r,
                template="devkit/notifications/demo_result",
                dedup_key=f"e2e:{r}",
                context={"items": 1, "checksum": 0},
            )
            for r in recipients
        ],
        kick=False,
    )
    deliveries = [
        enqueue_job("jobs.deliver_notifications", kwargs={"batch_size": 3}, trigger="command")
        for _ in range(2)
    ]
    qcluster.start(
        ["notifications"],
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(tmp_path),
        },
    )

    done = [wait_for_run(d.pk, timeout_seconds=60) for d in deliveries]

    assert [d.status for d in done] == ["succeeded", "succeeded"]
    assert sum(d.result["sent"] for d in done) == 30
    sent_lines = [
        line
        for f in tmp_path.iterdir()
        for line in f.read_text().splitlines()
        if line.startswith("To: ")
    ]
    assert sorted(sent_lines) == sorted(f"To: {r}" for r in recipients)
    assert Notification.objects.filter(status="sent").count() == 30


def test_job_over_its_time_limit__is_stopped_and_recorded_failed(qcluster):
    run = enqueue_job("tests.overrun", kwargs={"seconds": 30}, trigger="command")
    qcluster.start(["default"])

    run = wait_for_run(run.pk, timeout_seconds=30)

    assert run.status == "failed"
    assert "TimeoutException" in run.error and "timeout value (2 seconds)" in run.error
    assert run.duration_seconds < 10


def test_health__names_a_queue_nobody_consumes_at_once_and_clears_when_its_cluster_starts(
    qcluster, admin_client
):
    from jobs.health.checks import check_cluster, queue_consumers

    # A cluster killed by an earlier test may take a moment to leave.
    wait_until(lambda: not queue_consumers(), timeout_seconds=10, what="no cluster connected")
    assert check_cluster().detail == "no qcluster running (start: make run-cluster)"
    qcluster.start(["default", "notifications", "subscriptions"])
    # A starting cluster's first session closes before it spawns the processes whose
    # sessions stay open: wait until all three have been connected for a whole second.
    three, connected_since = {"default", "notifications", "subscriptions"}, [0.0]

    def three_connected_steadily() -> bool:
        if set(queue_consumers()) != three:
            connected_since[0] = 0.0
            return False
        connected_since[0] = connected_since[0] or time.monotonic()
        return time.monotonic() - connected_since[0] >= 1.0

    wait_until(three_connected_steadily, timeout_seconds=30, what="the three clusters")
    assert check_cluster().detail.startswith("queue(s) apply not consumed")
    # Nothing waits in the apply queue yet: the missing consumer is named by queue, at once.
    check = admin_client.get("/health/").json()["checks"]["cluster"]
    assert check["ok"] is False
    assert check["detail"].startswith("queue(s) apply not consumed: no qcluster for them")

    qcluster.start(["apply"])

    every = "every queue consumed (default, notifications, apply, subscriptions)"
    wait_until(lambda: check_cluster().detail == every, timeout_seconds=30, what="apply consumed")
