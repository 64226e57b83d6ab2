"""Scheduling rules: the misfire grace (a slot started too late is `missed`), the soft limit."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import run_job_now, run_scheduled_job
from tests import e2e_jobs

pytestmark = pytest.mark.django_db(transaction=True)
SLOT = datetime(2030, 5, 6, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("late", "status"), [(299, "succeeded"), (301, "missed")])
def test_cron_slot_later_than_the_300_s_grace__recorded_missed_not_run(late, status):
    with time_machine.travel(SLOT + timedelta(seconds=late), tick=False):
        outcome = run_scheduled_job("tests.tick", scheduled_for=SLOT.isoformat())

    run = JobRun.objects.get(job="tests.tick")
    assert (outcome["status"], run.status, run.trigger) == (status, status, "schedule")
    if status == "missed":
        assert run.result == {"missed": True, "late_seconds": 301, "grace_seconds": 300}
        assert run.started_at is None and run.finished_at is not None
    else:
        assert run.result == {"tick": True}


def test_job_that_runs_late_once__runs_its_late_slot():
    with time_machine.travel(SLOT + timedelta(hours=3), tick=False):
        outcome = run_scheduled_job("tests.catch_up", scheduled_for=SLOT.isoformat())

    assert outcome["status"] == "succeeded"
    assert JobRun.objects.get(job="tests.catch_up").result == {"ran": True}


def test_list_jobs__shows_what_each_job_does_with_a_late_slot(capsys):
    from django.core.management import call_command

    call_command("list_jobs")
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}

    assert "late: run once" in lines["tests.catch_up"]
    assert "late: skip >300s" in lines["tests.tick"]
    assert "limits 1500/1800s" in lines["loyalty.expire_points"]


@pytest.fixture
def frozen_job_clock():
    with time_machine.travel(SLOT, tick=False) as traveller:
        e2e_jobs.step_clock = lambda seconds: traveller.shift(timedelta(seconds=seconds))
        yield traveller
    e2e_jobs.step_clock = None


def test_soft_time_limit__job_stops_at_its_next_safe_point_recorded_timed_out(frozen_job_clock):
    # 20 s steps, soft limit 60 s: step 3 ends when it is reached, its report stops the job.
    run = run_job_now("tests.soft_limited", kwargs={"steps": 10, "step_seconds": 20})

    run.refresh_from_db()
    assert run.status == JobRun.Status.TIMED_OUT
    assert run.get_status_display() == "timed out"
    assert run.result == {
        "timed_out": True,
        "soft_limit_seconds": 60,
        "progress": {"done": 3, "total": 10, "unit": "steps"},
    }
    assert (
        run.error == "soft time limit of 60 s reached: stopped at a safe point after 3 of 10 steps"
    )
    assert not JobRun.objects.filter(parent=run).exists(), "a timed-out run is not retried"


def test_soft_time_limit__not_inside_the_jobs_own_transaction(frozen_job_clock):
    run = run_job_now(
        "tests.soft_limited", kwargs={"steps": 5, "step_seconds": 20, "in_transaction": True}
    )

    run.refresh_from_db()
    # Every report is inside the job's own transaction: none stops it (that would roll back
    # the step it counts); the checkpoint after the loop, outside, does.
    assert run.status == JobRun.Status.TIMED_OUT
    assert run.result["progress"]["done"] == 5


def test_soft_time_limit__never_retried_so_a_chain_does_not_keep_its_lock_for_a_retry():
    from jobs.exceptions import SoftTimeLimitExceeded
    from jobs.runs.retry import DEFAULT_RETRY

    assert DEFAULT_RETRY.will_retry(attempt=1, error=RuntimeError()) is True
    assert DEFAULT_RETRY.will_retry(attempt=1, error=SoftTimeLimitExceeded()) is False


def test_soft_limit_default__five_sixths_of_the_hard_limit():
    assert get_job("loyalty.expire_points").soft_limit_seconds == 1500  # 25 of 30 minutes
    assert get_job("tests.soft_limited").soft_limit_seconds == 60


def test_admin_dashboard_and_health_show_missed_and_timed_out_runs(admin_client):
    from django.utils import timezone

    now = timezone.now()
    missed = JobRun.objects.create(
        job="tests.tick", trigger="schedule", status="missed", finished_at=now
    )
    timed_out = JobRun.objects.create(
        job="tests.soft_limited", trigger="command", status="timed_out", finished_at=now
    )

    page = admin_client.get("/admin/jobs/jobrun/?status=timed_out").content.decode()
    assert f"/admin/jobs/jobrun/{timed_out.pk}/change/" in page
    assert f"/admin/jobs/jobrun/{missed.pk}/change/" not in page
    assert ">timed out</strong>" in page
    assert "?status=missed" in page and "?status=timed_out" in page  # filter choices
    dashboard = admin_client.get("/admin/jobs/jobrun/overview/").content.decode()
    assert 'class="status status-timed_out"' in dashboard
    checks = admin_client.get("/health/").json()["checks"]
    assert checks["failures_24h"]["ok"] is False
    assert "tests.soft_limited" in checks["failures_24h"]["detail"]
    assert (
        checks["missed"]["warning"] is True
        and f"tests.tick #{missed.pk}" in (checks["missed"]["detail"])
    )
