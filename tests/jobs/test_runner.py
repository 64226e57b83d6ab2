"""The runner records every run: success, failure with retry, skip when the lock is held."""

import pytest
from django_q.models import Schedule

from jobs.models import JobRun
from jobs.runner import enqueue_job, execute_queued_run, run_job_now
from jobs.runs import locks

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_job_now__records_success_with_result_and_duration():
    run = run_job_now("devkit.demo_job", kwargs={"items": 10}, triggered_by="tester")

    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.result == {"items": 10, "checksum": 45, "notified": False}
    assert run.trigger == JobRun.Trigger.COMMAND
    assert run.triggered_by == "tester"
    assert run.duration_seconds is not None and run.finished_at is not None
    assert run.host and run.pid


def test_failed_run__records_error_and_parks_a_retry_as_one_off_schedule():
    run = run_job_now("devkit.demo_job", kwargs={"fail": True})

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert run.error == "RuntimeError: demo_job asked to fail"
    assert "Traceback" in run.traceback
    child = JobRun.objects.get(parent=run)
    assert (child.trigger, child.status, child.attempt) == ("retry", "queued", 2)
    assert run.result == {
        "retry_run_id": child.pk,
        "retry_in_seconds": pytest.approx(run.result["retry_in_seconds"]),
    }
    assert 0 <= run.result["retry_in_seconds"] <= 1.0
    schedule = Schedule.objects.get(name=f"run:{child.pk}")
    assert schedule.schedule_type == Schedule.ONCE and schedule.next_run >= run.finished_at


def test_failed_run__frees_the_job_wide_lock_while_its_retry_waits():
    run = run_job_now("devkit.demo_job", kwargs={"fail": True})
    retry = JobRun.objects.get(parent=run)
    assert locks.lease_row("job:devkit.demo_job") is None

    # A manual run meanwhile runs; the retry runs after it, each holding the lock in turn.
    manual = run_job_now("devkit.demo_job", kwargs={"items": 1})
    assert manual.status == JobRun.Status.SUCCEEDED
    JobRun.objects.filter(pk=retry.pk).update(kwargs={"items": 1})
    execute_queued_run(retry.pk)

    retry.refresh_from_db()
    assert (retry.status, retry.needs_attention) == (JobRun.Status.SUCCEEDED, False)
    assert locks.lease_row("job:devkit.demo_job") is None


def test_last_attempt_failure__is_not_retried():
    from jobs.runner import execute_run
    from jobs.runs.lifecycle import claim as _claim

    run = JobRun.objects.create(
        job="devkit.demo_job", trigger="retry", attempt=2, kwargs={"fail": True}
    )
    execute_run(_claim(run.pk), raise_errors=False)

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert run.result == {"retries_exhausted": True}
    assert not JobRun.objects.filter(parent=run).exists()


def test_run_while_lock_is_held__is_recorded_skipped():
    locks.acquire_lease(key="job:devkit.demo_job", owner="someone-else", lease_seconds=60)

    run = run_job_now("devkit.demo_job", kwargs={"items": 1})

    run.refresh_from_db()
    assert run.status == JobRun.Status.SKIPPED
    assert "held by someone-else" in run.result["reason"]


def test_job_raising_job_skipped__is_recorded_skipped_not_failed():
    run = run_job_now("tests.skip_me", kwargs={"reason": "collection 3 is being imported"})

    run.refresh_from_db()
    assert run.status == JobRun.Status.SKIPPED
    assert run.result == {"skipped": True, "reason": "collection 3 is being imported"}
    assert not JobRun.objects.filter(parent=run).exists()


def test_retry_uses_kwargs_updated_by_the_job():
    run = run_job_now("tests.fail_with_token", kwargs={})

    run.refresh_from_db()
    child = JobRun.objects.get(parent=run)
    assert run.kwargs == {"token": "abc"}
    assert child.kwargs == {"token": "abc"}


def test_will_retry__matches_the_runner_decision():
    from jobs.exceptions import PermanentJobError
    from jobs.runs.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=3)
    assert policy.will_retry(attempt=2, error=RuntimeError()) is True
    assert policy.will_retry(attempt=3, error=RuntimeError()) is False
    assert policy.will_retry(attempt=1, error=PermanentJobError()) is False


def test_permanent_error__recorded_failed_as_permanent_and_not_retried():
    run = run_job_now("tests.permanent_failure", kwargs={})

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert run.result == {"permanent": True}
    assert run.error == "PermanentJobError: bad credentials"
    assert not JobRun.objects.filter(parent=run).exists()


def test_permanent_error_on_a_job_without_retries__recorded_permanent_not_exhausted():
    run = run_job_now("tests.permanent_no_retry", kwargs={})

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert run.result == {"permanent": True}
    assert run.error == "PermanentJobError: account closed"


def test_permanent_error_on_the_last_attempt__recorded_permanent_not_exhausted():
    from jobs.runner import execute_run
    from jobs.runs.lifecycle import claim as _claim

    run = JobRun.objects.create(job="tests.permanent_failure", trigger="retry", attempt=4)
    execute_run(_claim(run.pk), raise_errors=False)

    run.refresh_from_db()
    assert run.result == {"permanent": True}
    assert not JobRun.objects.filter(parent=run).exists()


def test_flag_for_attention__reason_kept_in_history_and_shown_by_health(admin_client):
    run = run_job_now("tests.flag_me", kwargs={"reason": "7.5% of wallet updates failed"})

    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert (run.needs_attention, run.attention_reason) == (True, "7.5% of wallet updates failed")
    attention = admin_client.get("/health/").json()["checks"]["attention"]
    assert attention["warning"] is True
    assert f"tests.flag_me #{run.pk} (7.5% of wallet updates failed)" in attention["detail"]


@pytest.mark.parametrize("fail", [False, True])
def test_run_taken_over_by_another_worker__late_outcome_not_recorded(fail, caplog):
    import tests.e2e_jobs  # noqa: F401  registers tests.taken_over

    run = enqueue_job("tests.taken_over", kwargs={"fail": fail}, trigger=JobRun.Trigger.COMMAND)
    if fail:
        with pytest.raises(RuntimeError, match="late failure"):
            execute_queued_run(run.pk)
    else:
        execute_queued_run(run.pk)

    run.refresh_from_db()
    # Still the second claim's run: neither the late result nor a retry from the first.
    assert (run.status, run.result, run.error) == (JobRun.Status.RUNNING, None, "")
    assert not Schedule.objects.filter(name=f"run:{run.pk}").exists()
    assert not JobRun.objects.filter(parent=run).exists()
    assert "was taken over by another worker" in caplog.text


def test_queued_run_of_a_job_no_longer_registered__failed_and_let_go():
    """A release renamed or removed a job while one of its runs waited (a retry parked for
    its backoff, a chain's next hop): the worker that takes the run records it failed,
    naming the job, and lets go of the run; it does not stay `running` for ever, held by
    the worker's session (a qcluster keeps its connection between tasks)."""
    from jobs import sql
    from jobs.exceptions import UnknownJob
    from jobs.runs.lifecycle import new_run

    run = new_run("tests.renamed_away", trigger=JobRun.Trigger.RETRY, kwargs={"n": 1})

    with pytest.raises(UnknownJob):  # django-q2 records the task failed too
        execute_queued_run(run.pk)

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert "tests.renamed_away" in run.error and "not a registered job" in run.error
    assert run.result == {"permanent": True}
    alive = sql.fetch("SELECT " + sql.RUN_ALIVE.format(run="%(id)s::bigint"), {"id": run.pk})
    assert alive == [(False,)]


def test_run_delivered_again_after_handing_its_lease_on__does_not_take_it_back():
    """A hop queued the run that continues its work, handed it the lease, and its worker
    died before recording the hop's end; the reaper delivers the hop again. The lease is
    the waiting run's: the old hop is recorded skipped naming it (it does not take the
    lease back, redo its work and leave the waiting run to be skipped and flagged)."""
    from jobs.runs.lifecycle import new_run

    hop = new_run("devkit.demo_job", trigger=JobRun.Trigger.CHAIN, status=JobRun.Status.RUNNING)
    waiting = new_run("devkit.demo_job", trigger=JobRun.Trigger.CHAIN, parent=hop)
    key = "job:devkit.demo_job"
    locks.acquire_lease(key=key, owner=f"run:{hop.pk}", run_id=hop.pk)
    locks.hand_over_leases(from_run=hop.pk, to_run=waiting.pk)

    execute_queued_run(hop.pk)

    hop.refresh_from_db()
    assert hop.status == JobRun.Status.SKIPPED
    assert hop.result["lock_held"]["run_id"] == waiting.pk
    assert locks.lease_row(key).run_id == waiting.pk
    assert execute_queued_run(waiting.pk)["status"] == JobRun.Status.SUCCEEDED
