"""Q_BROKER=redis: django-q2's Redis broker with a real redis-server (Debian's), not a mock.

Only the queue moves to Redis: JobRun rows, leases, schedules (delayed retries) and the
outbox stay in PostgreSQL. The test process enqueues through the same broker the
settings select for the qcluster (django_q.conf.Conf patched as Q_BROKER=redis sets it).
"""

import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ

from devkit.devservers import free_port
from jobs.models import JobRun
from jobs.runner import enqueue_job
from tests.reliability import redis_fixtures
from tests.reliability.conftest import poll, say

pytestmark = [pytest.mark.e2e]

redis_server = redis_fixtures.redis_server
redis_broker_here = redis_fixtures.redis_broker_here

FINISHED = {"succeeded", "failed", "skipped"}


def q_cluster_of(env: dict[str, str]) -> dict:
    code = (
        "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
        "from django.conf import settings; q = settings.Q_CLUSTER; "
        "print(json.dumps({k: q.get(k) for k in ('orm', 'broker_class', 'redis')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_settings__q_broker_selects_the_broker_orm_by_default():
    env = {k: "" for k in ("Q_BROKER", "REDIS_URL")}
    assert q_cluster_of(env) == {
        "orm": "default",
        "broker_class": "jobs.broker.SkipLockedORMBroker",
        "redis": None,
    }
    # django-q2 takes "orm"/"broker_class" before "redis": both must be gone.
    assert q_cluster_of({"Q_BROKER": "redis", "REDIS_URL": "redis://10.0.0.5:6380/2"}) == {
        "orm": None,
        "broker_class": None,
        "redis": "redis://10.0.0.5:6380/2",
    }
    assert q_cluster_of({"Q_BROKER": "redis", "REDIS_URL": ""})["redis"] == (
        "redis://127.0.0.1:6379/0"
    )


def test_redis_broker__run_queued_after_commit_runs_and_single_flight_skips(
    redis_broker_here, qcluster, quiet_scheduler
):
    from django_q.brokers import get_broker
    from django_q.status import Stat

    redis_server = redis_broker_here
    started = time.monotonic()
    with transaction.atomic():
        run = enqueue_job("jobs.demo_job", kwargs={"items": 10}, trigger="command")
        # Nothing may reach Redis before the JobRun row is committed.
        assert redis_server.queue_length() == 0
    assert redis_server.queue_length() == 1
    assert not OrmQ.objects.exists()

    qcluster.start(["default"], env={"Q_BROKER": "redis", "REDIS_URL": redis_server.url})
    run = poll(
        lambda: JobRun.objects.filter(pk=run.pk, status__in=FINISHED).first(),
        timeout=30,
        what="the demo run to finish",
    )
    assert run.status == "succeeded", run.error
    assert run.result == {"items": 10, "checksum": sum(range(10)), "notified": False}
    # /health/'s cluster check reads the heartbeat through the broker: Redis here.
    stats = poll(lambda: Stat.get_all(broker=get_broker()), timeout=10, what="a cluster stat")

    # Two concurrent runs of a single-flight job: one runs, one is skipped.
    runs = [enqueue_job("tests.sleep", kwargs={"seconds": 2}, trigger="command") for _ in "ab"]
    poll(
        lambda: (
            JobRun.objects.filter(pk__in=[r.pk for r in runs], status__in=FINISHED).count() == 2
        ),
        timeout=30,
        what="both single-flight runs to finish",
    )
    statuses = sorted(JobRun.objects.filter(pk__in=[r.pk for r in runs]).values_list("status"))
    assert statuses == [("skipped",), ("succeeded",)]
    assert redis_server.queue_length() == 0
    assert not OrmQ.objects.exists()  # the PostgreSQL queue was never used
    say(
        f"Redis broker on port {redis_server.port}: demo run {run.pk} succeeded "
        f"({run.result}), {len(stats)} cluster stat(s) in Redis, single-flight pair "
        f"{[s for (s,) in statuses]}; {time.monotonic() - started:.1f} s"
    )


def test_redis_down__the_run_is_failed_not_left_queued(transactional_db, monkeypatch):
    import redis

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{free_port()}/0")  # nobody listens

    with pytest.raises(redis.ConnectionError):
        enqueue_job("jobs.demo_job", trigger="command")
    run = JobRun.objects.get()
    assert run.status == "failed" and run.finished_at is not None
    assert run.error.startswith("not queued, the broker refused it: ConnectionError")
