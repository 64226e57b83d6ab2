"""A run killed with its lock: the next run takes the lock over at once and records the dead
run lost; a manual run blocked by a live holder exits 3 naming it; /health/ warns."""

import socket
import subprocess
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from jobs import locks
from jobs.models import JobRun
from jobs.runner import run_job_now

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "job:jobs.demo_job"


def dead_pid() -> int:
    """The pid of a process that has exited (as a killed worker's)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def running_run(*, pid: int, heartbeat_age: float = 2) -> JobRun:
    now = timezone.now()
    return JobRun.objects.create(
        job="jobs.demo_job",
        trigger="command",
        status=JobRun.Status.RUNNING,
        started_at=now - timedelta(seconds=30),
        heartbeat_at=now - timedelta(seconds=heartbeat_age),
        host=socket.gethostname(),
        pid=pid,
    )


def lease_from_a_session_that_ends(owner: str) -> None:
    def hold() -> None:
        try:
            locks.acquire_lease(key=KEY, owner=owner, lease_seconds=600, bind_session=True)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()


def test_killed_run__next_run_takes_its_lock_at_once_and_records_it_lost():
    dead = running_run(pid=dead_pid())  # heartbeat 2 s old: nothing looks stale yet
    lease_from_a_session_that_ends(f"run:{dead.pk}")

    run = run_job_now("jobs.demo_job", kwargs={"items": 3})

    run.refresh_from_db()
    dead.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED, run.result
    assert dead.status == JobRun.Status.FAILED
    assert dead.error.startswith("worker lost: its lock job:jobs.demo_job was taken over by run")
    assert "database session ended" in dead.error
    assert locks.lease_holder(KEY) is None  # released by the run that took it over


def test_run_job__lock_held_by_a_live_run_exits_3_and_names_the_holder():
    holder = running_run(pid=1, heartbeat_age=42)  # pid 1 exists: the holder is alive
    locks.acquire_lease(key=KEY, owner=f"run:{holder.pk}", lease_seconds=600, bind_session=True)

    with pytest.raises(CommandError) as caught:
        call_command("run_job", "jobs.demo_job", stdout=StringIO())

    message = str(caught.value)
    assert caught.value.returncode == 3
    assert f"held by run:{holder.pk} (jobs.demo_job, running)" in message
    assert f"on host {socket.gethostname()} pid 1" in message
    assert "heartbeat 42 s ago" in message
    assert "the lease frees at " in message and "or as soon as its database session ends" in message
    skipped = JobRun.objects.exclude(pk=holder.pk).get()
    assert skipped.status == JobRun.Status.SKIPPED
    assert skipped.result["lock_held"]["run_id"] == holder.pk


def test_health__warns_about_a_running_run_whose_heartbeat_stopped(admin_client):
    running_run(pid=dead_pid(), heartbeat_age=5)
    assert admin_client.get("/health/").json()["checks"]["heartbeats"]["ok"] is True

    stale = running_run(pid=dead_pid(), heartbeat_age=95)
    body = admin_client.get("/health/").json()
    check = body["checks"]["heartbeats"]

    assert check["ok"] is False and check["warning"] is True
    assert f"jobs.demo_job #{stale.pk} on {socket.gethostname()}:{stale.pid}" in check["detail"]
    assert "(95 s ago)" in check["detail"]


@pytest.mark.parametrize("command", [["expire_points"], ["sync_wallet_passes"]])
def test_app_commands__lock_held_by_a_live_run_exit_3_naming_it(command):
    job = {
        "expire_points": "loyalty.expire_points",
        "sync_wallet_passes": "loyalty.sync_wallet_passes",
    }
    holder = running_run(pid=1)
    holder.job = job[command[0]]
    holder.save()
    locks.acquire_lease(
        key=f"job:{holder.job}", owner=f"run:{holder.pk}", lease_seconds=600, bind_session=True
    )

    with pytest.raises(CommandError) as caught:
        call_command(*command, stdout=StringIO())

    assert caught.value.returncode == 3
    assert f"held by run:{holder.pk} ({holder.job}, running)" in str(caught.value)
