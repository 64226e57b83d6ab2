"""A run killed with its lock: the next run takes the lock over at once and records the dead
run lost; a manual run blocked by a live holder exits 3 naming it; /health/ warns."""

import os
import socket
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from jobs.models import JobRun
from jobs.runner import run_job_now
from jobs.runs import locks
from tests.live_run import LiveRun, dead_run, lease_holder

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "job:devkit.demo_job"


def running_run(*, heartbeat_age: float = 2, job: str = "devkit.demo_job") -> JobRun:
    now = timezone.now()
    return JobRun.objects.create(
        job=job,
        trigger="command",
        status=JobRun.Status.QUEUED,
        started_at=now - timedelta(seconds=30),
        heartbeat_at=now - timedelta(seconds=heartbeat_age),
    )


def hold_lock(run: JobRun) -> None:
    locks.acquire_lease(key=f"job:{run.job}", owner=f"run:{run.pk}", run_id=run.pk)


def test_killed_run__next_run_takes_its_lock_at_once_and_records_it_lost():
    dead = running_run()  # heartbeat 2 s old: nothing looks stale yet
    with LiveRun(dead) as live:
        hold_lock(dead)
        live.kill()

    run = run_job_now("devkit.demo_job", kwargs={"items": 3})

    run.refresh_from_db()
    dead.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED, run.result
    assert dead.status == JobRun.Status.FAILED
    assert dead.error.startswith("worker lost: its lock job:devkit.demo_job was taken over by run")
    assert "database session ended" in dead.error
    assert lease_holder(KEY) is None  # released by the run that took it over


def test_run_job__lock_held_by_a_live_run_exits_3_and_names_the_holder(time_machine):
    holder = running_run()
    with LiveRun(holder):
        hold_lock(holder)
        # "42 s ago" exactly: on a busy machine half a second to the message rounds it to 43
        time_machine.move_to(timezone.now(), tick=False)
        JobRun.objects.filter(pk=holder.pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=42)
        )
        with pytest.raises(CommandError) as caught:
            call_command("run_job", "devkit.demo_job", stdout=StringIO())

    message = str(caught.value)
    assert caught.value.returncode == 3
    assert f"held by run:{holder.pk} (devkit.demo_job, running)" in message
    assert f"on host {socket.gethostname()} pid {os.getpid()}" in message
    assert "heartbeat 42 s ago" in message
    assert "it frees when that run ends, or as soon as its database session ends" in message
    skipped = JobRun.objects.exclude(pk=holder.pk).get()
    assert skipped.status == JobRun.Status.SKIPPED
    assert skipped.result["lock_held"]["run_id"] == holder.pk


def test_health__warns_about_a_running_run_whose_worker_is_gone(admin_client, time_machine):
    with LiveRun(running_run()):
        assert admin_client.get("/health/").json()["checks"]["lost_runs"]["ok"] is True

    lost = running_run(heartbeat_age=95)
    dead_run(lost)
    time_machine.move_to(timezone.now(), tick=False)  # "95 s ago" exactly, however busy
    JobRun.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=95))
    body = admin_client.get("/health/").json()
    check = body["checks"]["lost_runs"]

    assert check["ok"] is False and check["warning"] is True
    assert f"devkit.demo_job #{lost.pk} on {socket.gethostname()}:{os.getpid()}" in check["detail"]
    assert "(last heartbeat 95 s ago)" in check["detail"]


@pytest.mark.parametrize("command", [["expire_points"], ["sync_wallet_passes"]])
def test_app_commands__lock_held_by_a_live_run_exit_3_naming_it(command):
    job = {
        "expire_points": "loyalty.expire_points",
        "sync_wallet_passes": "loyalty.sync_wallet_passes",
    }
    holder = running_run(job=job[command[0]])
    with LiveRun(holder):
        hold_lock(holder)
        with pytest.raises(CommandError) as caught:
            call_command(*command, stdout=StringIO())

    assert caught.value.returncode == 3
    assert f"held by run:{holder.pk} ({holder.job}, running)" in str(caught.value)
