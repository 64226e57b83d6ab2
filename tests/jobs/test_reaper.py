"""jobs.reap_lost_runs: thresholds on a frozen clock, the broker's own redelivery respected.

The queue is real `django_q_ormq` rows. A lost task is a run whose queue row is gone: the
process died between the run's commit and the hand-over, or the task was acknowledged
while the run was not finished.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_q.models import OrmQ, Schedule

from jobs.models import JobRun
from jobs.queue.reaper import reap_lost_runs
from jobs.queue.schedules import sync_schedules
from jobs.queue.states import cluster_retry_seconds, waiting_run_ids
from jobs.runner import enqueue_job, execute_queued_run
from tests.live_run import LiveRun, dead_run

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2030, 5, 6, 7, 0, tzinfo=UTC)
RETRY = 1900  # Q_CLUSTER["retry"] of the default cluster


def at(seconds: float):
    return time_machine.travel(T0 + timedelta(seconds=seconds), tick=False)


def queued_run(job: str = "devkit.demo_job", **kwargs) -> JobRun:
    with at(0):
        return enqueue_job(job, kwargs=kwargs, trigger="command")


def lose_its_task(run: JobRun) -> None:
    """The run's task is gone from the queue table: nothing will deliver the run again."""
    OrmQ.objects.all().delete()
    assert run.pk not in waiting_run_ids()


def test_thresholds_come_from_each_clusters_retry_setting():
    assert [cluster_retry_seconds(c) for c in ("default", "notifications", "apply")] == [
        1900,
        360,
        660,
    ]


def test_queued_run_whose_task_is_lost__requeued_after_retry_then_left_to_the_broker():
    run = queued_run(items=3)
    lose_its_task(run)

    with at(RETRY - 1):
        assert reap_lost_runs() == {"requeued": [], "failed": [], "left_to_broker": []}
    with at(RETRY + 1):
        assert reap_lost_runs()["requeued"] == [run.pk]
        # At-least-once: the reaper delivered twice does not queue the run twice.
        assert reap_lost_runs() == {"requeued": [], "failed": [], "left_to_broker": []}

    run.refresh_from_db()
    assert (run.status, run.requeue_count) == ("queued", 1)
    assert run.requeued_at == T0 + timedelta(seconds=RETRY + 1)
    assert run.requeue_reason == (
        "task lost: queued since 2030-05-06 07:00:00 UTC, not held by the broker"
    )
    assert waiting_run_ids() == {run.pk}  # a new task, in the run's cluster
    with at(2 * RETRY + 2):
        assert reap_lost_runs()["left_to_broker"] == [run.pk]  # the broker will deliver it

    assert execute_queued_run(run.pk)["status"] == "succeeded"
    assert execute_queued_run(run.pk) == {"duplicate_delivery": True, "run_id": run.pk}
    run.refresh_from_db()
    assert (run.status, run.result["checksum"]) == ("succeeded", 3)


def test_queued_run_still_held_by_the_orm_broker__never_double_delivered():
    run = queued_run()
    with at(10 * RETRY):
        assert reap_lost_runs() == {"requeued": [], "failed": [], "left_to_broker": [run.pk]}
    assert OrmQ.objects.count() == 1
    assert JobRun.objects.get(pk=run.pk).requeue_count == 0


def test_running_run_whose_worker_died__requeued_at_once_and_a_live_one_left_alone():
    run = queued_run(items=4)
    lose_its_task(run)
    with LiveRun(run) as live:
        JobRun.objects.filter(pk=run.pk).update(host="gone-host", pid=4242, heartbeat_at=T0)
        # Alive (its session holds it), however old its heartbeat: never touched.
        with at(10 * RETRY):
            assert reap_lost_runs()["requeued"] == []
        live.kill()

    # Its worker died: no heartbeat age to wait for.
    with at(1):
        assert reap_lost_runs()["requeued"] == [run.pk]

    run.refresh_from_db()
    assert (run.status, run.requeue_count) == ("queued", 1)
    assert run.requeue_reason == (
        "worker lost: running on gone-host:4242, last heartbeat 2030-05-06 07:00:00 UTC"
    )
    assert execute_queued_run(run.pk)["status"] == "succeeded"
    run.refresh_from_db()
    assert run.status == "succeeded" and run.host != "gone-host"


def test_running_run_whose_task_the_orm_broker_still_holds__left_to_its_redelivery():
    run = queued_run()
    OrmQ.objects.update(lock=T0 + timedelta(seconds=RETRY))  # taken by a cluster, then killed
    dead_run(run)

    with at(1):
        assert reap_lost_runs()["left_to_broker"] == [run.pk]
    assert JobRun.objects.get(pk=run.pk).status == "running"


def test_notifications_cluster_runs_are_lost_after_that_clusters_retry():
    run = queued_run("jobs.deliver_notifications")
    lose_its_task(run)
    with at(cluster_retry_seconds("notifications") + 1):
        assert reap_lost_runs()["requeued"] == [run.pk]
    assert OrmQ.objects.get().key == "notifications"


def test_delayed_retry_parked_in_a_schedule__left_to_the_scheduler():
    with at(0):
        run = enqueue_job("devkit.demo_job", trigger="retry", delay_seconds=5)
    assert Schedule.objects.filter(name=f"run:{run.pk}").exists()
    with at(10 * RETRY):
        assert reap_lost_runs()["requeued"] == []


def test_run_lost_too_often__recorded_failed_not_requeued_for_ever():
    run = queued_run()
    lose_its_task(run)
    JobRun.objects.filter(pk=run.pk).update(requeue_count=3, requeued_at=T0)

    with at(RETRY + 1):
        assert reap_lost_runs()["failed"] == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert run.error.startswith("worker lost: requeued 3 times and never finished; last: task")
    assert not OrmQ.objects.exists()


def test_reaper_is_a_scheduled_core_job():
    sync_schedules()
    schedule = Schedule.objects.get(name="jobs.reap_lost_runs")
    assert (schedule.cron, schedule.cluster) == ("*/5 * * * *", "default")
