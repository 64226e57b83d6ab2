"""Q_BROKER=redis: the dashboard's queue depth, /metrics and /health/'s stalled-queue check
read the Redis lists (a real redis-server), not the empty PostgreSQL queue table."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from jobs.runner import enqueue_job
from jobs.selectors import queue_depth_by_cluster
from jobs.services.health import check_cluster
from jobs.services.queues import broker_class, queue_states
from tests.admin_helpers import staff_client
from tests.reliability import redis_fixtures
from tests.reliability.conftest import poll, say

pytestmark = [pytest.mark.e2e]

redis_server = redis_fixtures.redis_server
redis_broker_here = redis_fixtures.redis_broker_here


def queue_one_run_per_cluster() -> None:
    enqueue_job("jobs.demo_job", trigger="command")
    enqueue_job("jobs.demo_job", trigger="command")
    enqueue_job("jobs.deliver_notifications", trigger="command")
    enqueue_job(
        "bibliotheca.apply_bibliographic",
        kwargs={"collection_id": 1, "batch": "00000000-0000-0000-0000-000000000000"},
        trigger="command",
    )


def test_queue_depth_and_oldest_task_come_from_redis(transactional_db, redis_broker_here, client):
    from django_q.brokers.redis_broker import Redis

    redis = redis_broker_here
    assert broker_class() is Redis
    before = timezone.now()
    queue_one_run_per_cluster()
    after = timezone.now()

    depth = queue_depth_by_cluster()
    assert depth == {"default": 2, "notifications": 1, "apply": 1, "subscriptions": 0}
    assert depth == {name: redis.queue_length(name) for name in depth}
    assert not OrmQ.objects.exists()
    oldest = queue_states()["default"].oldest_enqueued_at
    assert before <= oldest <= after  # the head task's `started`, set when it was queued
    metrics = client.get("/metrics").content.decode()
    assert 'jobs_queue_depth{cluster="default"} 2.0' in metrics
    staff_client(client, "operator", [("jobs", "view_jobrun")])
    dashboard = client.get(reverse("admin:jobs_jobrun_overview")).content.decode()
    assert re.search(r"queue default</div><div class=\"value\">2<", dashboard)
    assert 'jobs_queue_depth{cluster="apply"} 1.0' in metrics

    redis.stop()  # Redis down: the pages still answer, /health/ says why
    assert queue_depth_by_cluster() == dict.fromkeys(
        ("default", "notifications", "apply", "subscriptions")
    )
    assert "jobs_queue_depth{" not in client.get("/metrics").content.decode()
    dashboard = client.get(reverse("admin:jobs_jobrun_overview")).content.decode()
    assert re.search(r"queue default</div><div class=\"value\">\?<", dashboard)
    down = check_cluster()
    assert not down.ok and down.detail.startswith("cannot read cluster stats or queues")
    assert "Connection refused" in down.error  # the cause: to staff and the logs only


def test_health__a_redis_queue_nobody_consumes_is_reported_stalled(
    redis_broker_here, qcluster, quiet_scheduler
):
    redis = redis_broker_here
    queue_one_run_per_cluster()
    # Only the notifications cluster runs: it drains its own queue, nobody else's.
    qcluster.start(["notifications"], env=redis_fixtures.redis_cluster_env(redis))
    poll(lambda: redis.queue_length("notifications") == 0, timeout=30, what="notifications")
    check = poll(lambda: (c := check_cluster()).ok and c, timeout=10, what="a cluster stat")
    assert check.detail == "1 cluster process(es) alive"

    with time_machine.travel(timezone.now() + timedelta(seconds=301), tick=False):
        stalled = check_cluster()
    assert not stalled.ok
    assert stalled.detail.startswith("queue(s) default, apply not consumed for 300s")
    say(f"Redis queues {queue_depth_by_cluster()}, 301 s later: {stalled.line()}")
    # Verified: kill rather than stop (a Redis cluster takes ~11 s to stop gracefully).
    for proc in qcluster.procs:
        qcluster.kill(proc)
