"""Q_BROKER=redis, a cluster killed -9 mid-task: what is lost, and jobs.reap_lost_runs recovering it.

Real redis-server, real qcluster processes, real PostgreSQL. One worker runs run A while
the cluster's pusher has already popped run B from Redis into its memory; kill -9 loses
both tasks (BLPOP, no acknowledgement). As the crash tests do, the thresholds are passed
by moving the two timestamps the reaper reads back, not by waiting 5 or 30 minutes.
"""

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from jobs.models import JobRun
from jobs.runner import enqueue_job, execute_queued_run, run_job_now
from jobs.services.queues import cluster_retry_seconds
from tests.reliability import redis_fixtures
from tests.reliability.conftest import age_out, poll, say

pytestmark = [pytest.mark.e2e]

redis_server = redis_fixtures.redis_server
redis_broker_here = redis_fixtures.redis_broker_here

FINISHED = {"succeeded", "failed", "skipped"}


def marks(path: Path) -> list[str]:
    return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()]


def test_killed_redis_cluster__tasks_lost__reaper_requeues__each_run_succeeds_once(
    redis_broker_here, qcluster, quiet_scheduler, tmp_path
):
    redis = redis_broker_here
    marker = tmp_path / "marks.txt"
    env = redis_fixtures.redis_cluster_env(redis, Q_WORKERS="1")
    [first] = qcluster.start(["default"], env=env)
    a = enqueue_job(
        "tests.marked_sleep",
        kwargs={"name": "a", "seconds": 2, "marker": str(marker)},
        trigger="command",
    )
    b = enqueue_job(
        "tests.marked_sleep",
        kwargs={"name": "b", "seconds": 0.1, "marker": str(marker)},
        trigger="command",
    )
    poll(lambda: marker.exists() and marks(marker), timeout=30, what="run A to start")
    poll(lambda: redis.queue_length() == 0, timeout=10, what="the pusher to pop run B")
    qcluster.kill(first)

    # Today's loss: both tasks left Redis, nothing will deliver them again.
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == ("running", "queued")
    assert redis.queue_length() == 0 and not OrmQ.objects.exists()
    assert marks(marker) == [f"start run={a.pk}"]
    killed_pid = a.pid
    # Before the thresholds the reaper touches nothing (the worker may just be slow).
    assert run_job_now("jobs.reap_lost_runs").result == {
        "requeued": [],
        "failed": [],
        "left_to_broker": [],
    }

    # 5 minutes without a heartbeat for A (its lease expired); B due 1900 s ago.
    age_out(lease_key="marked:a", run_ids=[a.pk], seconds=300)
    due = timezone.now() - timedelta(seconds=cluster_retry_seconds("default") + 1)
    JobRun.objects.filter(pk=b.pk).update(scheduled_for=due, created_at=due)

    qcluster.start(["default"], env=env)
    reaper = enqueue_job("jobs.reap_lost_runs", trigger="command", triggered_by="test")
    poll(
        lambda: JobRun.objects.filter(pk__in=[a.pk, b.pk], status__in=FINISHED).count() == 2,
        timeout=60,
        what="runs A and B to finish after the reaper",
    )
    reaper.refresh_from_db()
    assert reaper.status == "succeeded", reaper.error
    assert reaper.result == {"requeued": [b.pk, a.pk], "failed": [], "left_to_broker": []}

    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, a.requeue_count, b.status, b.requeue_count) == (
        "succeeded",
        1,
        "succeeded",
        1,
    )
    assert a.requeue_reason.startswith(f"worker lost: running on {a.host}:{killed_pid},")
    assert b.requeue_reason.startswith("task lost: queued since ")
    assert a.pid != killed_pid

    # The original task delivered once more (at-least-once) and the reaper run again:
    # the claim refuses the first, the second finds nothing lost.
    assert execute_queued_run(a.pk) == {"duplicate_delivery": True, "run_id": a.pk}
    assert run_job_now("jobs.reap_lost_runs").result["requeued"] == []
    # A began twice (killed, then requeued) and finished once; B began and finished once.
    assert Counter(marks(marker)) == {
        f"start run={a.pk}": 2,
        f"done run={a.pk}": 1,
        f"start run={b.pk}": 1,
        f"done run={b.pk}": 1,
    }
    say(
        f"kill -9 lost run {a.pk} (running, pid {killed_pid}) and run {b.pk} (popped, queued); "
        f"reaper run {reaper.pk} requeued both; each ran to success once: {marks(marker)}"
    )
    # Verified: kill rather than stop (a Redis cluster takes ~11 s to stop gracefully).
    for proc in qcluster.procs:
        qcluster.kill(proc)
