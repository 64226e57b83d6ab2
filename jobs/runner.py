"""Run a registered job and record it: every path ends in `execute_run`, so every run leaves
a JobRun row; a run is claimed first (jobs.runs.lifecycle), so a second delivery does nothing."""

import logging
import time
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from jobs.arguments import check_job_arguments
from jobs.conf import jobs_settings
from jobs.exceptions import JobSkipped, SoftTimeLimitExceeded, UnknownJob
from jobs.health.sentry import report_failed_run
from jobs.models import JobRun
from jobs.registry import JobSpec, get_job
from jobs.runs import current, lifecycle, locks, soft_limit
from jobs.runs.lifecycle import finish, safely
from jobs.runs.progress import describe_progress
from jobs.runs.queue_task import EXECUTE_QUEUED_RUN, queue_task_id

logger = logging.getLogger("jobs")


def q_options_for(spec: JobSpec, run_id: int | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"cluster": spec.cluster, "timeout": spec.timeout_seconds}
    if run_id is not None:
        options["task_name"] = f"{spec.name}#{run_id}"
    return options


def enqueue_job(
    name: str,
    *,
    kwargs: dict[str, Any] | None = None,
    trigger: str,
    triggered_by: str = "",
    parent: JobRun | None = None,
    attempt: int = 1,
    delay_seconds: float | None = None,
) -> JobRun:
    """Record a queued run and hand it to the job's cluster (after commit).

    With `delay_seconds` the run is parked in a one-off django-q2 Schedule (django-q2 has no
    delayed delivery; its scheduler wakes every 30 s, so short delays round up).
    """
    kwargs = dict(kwargs or {})
    spec = check_job_arguments(name, kwargs, validate=trigger != JobRun.Trigger.RETRY)
    now = timezone.now()
    run_at = now + timedelta(seconds=delay_seconds) if delay_seconds else None
    with transaction.atomic():
        run = lifecycle.new_run(
            name,
            trigger=trigger,
            triggered_by=triggered_by,
            kwargs=kwargs,
            parent=parent,
            attempt=attempt,
            scheduled_for=run_at or now,
        )
        if run_at is not None:
            Schedule.objects.create(
                name=f"run:{run.pk}",
                func=EXECUTE_QUEUED_RUN,
                kwargs=repr({"run_id": run.pk, "q_options": q_options_for(spec, run.pk)}),
                schedule_type=Schedule.ONCE,
                repeats=-1,
                next_run=run_at,
                cluster=spec.cluster,
            )
        else:
            # After the commit, never before: a worker must find the row.
            transaction.on_commit(lambda: _hand_to_cluster(run.pk, spec))
    return run


def _hand_to_cluster(run_id: int, spec: JobSpec) -> None:
    """Queue a committed run; if the broker refuses, fail the run (else it stays queued for
    ever), then raise."""
    try:
        async_task(EXECUTE_QUEUED_RUN, run_id=run_id, q_options=q_options_for(spec, run_id))
    except Exception as exc:
        JobRun.objects.filter(pk=run_id, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"not queued, the broker refused it: {type(exc).__name__}: {exc}"[:10000],
        )
        raise


def execute_queued_run(run_id: int) -> dict[str, Any]:
    """django-q2 entry point for a queued run."""
    run = lifecycle.claim(run_id)
    if run is None:
        logger.info("run %s already claimed or finished; duplicate delivery ignored", run_id)
        return {"duplicate_delivery": True, "run_id": run_id}
    run = execute_run(run, raise_errors=True)
    return {"run_id": run.pk, "status": run.status}


def run_scheduled_job(job_name: str, scheduled_for: str | None = None) -> dict[str, Any]:
    """django-q2 entry point of a cron Schedule (jobs.queue.schedules); a slot past the
    misfire grace is recorded `missed`, not run (`_misfire`)."""
    spec = get_job(job_name)
    task_id = queue_task_id()
    missed = _misfire(spec, scheduled_for)
    try:
        with transaction.atomic():
            run = lifecycle.new_run(
                job_name,
                trigger=JobRun.Trigger.SCHEDULE,
                triggered_by="scheduler",
                scheduled_for=scheduled_for,
                task_id=task_id,
                status=JobRun.Status.MISSED if missed else JobRun.Status.QUEUED,
                result=missed,
                finished_at=timezone.now() if missed else None,
                duration_seconds=0 if missed else None,
            )
    except IntegrityError:
        logger.info("task %s of %s delivered twice; ignored", task_id, job_name)
        return {"duplicate_delivery": True, "task_id": task_id}
    if missed:
        logger.warning("%s slot %s missed: %s", job_name, scheduled_for, missed)
        lifecycle.run_finished.send(sender=JobRun, run=run)
        return {"run_id": run.pk, "status": run.status}
    return execute_queued_run(run.pk)


def _misfire(spec: JobSpec, scheduled_for: str | None) -> dict[str, Any] | None:
    """The `missed` result of a slot starting more than JOBS_MISFIRE_GRACE_SECONDS late
    (unless the job runs late once), else None."""
    if not scheduled_for or spec.run_late_once:
        return None
    due = datetime.fromisoformat(scheduled_for)
    if timezone.is_naive(due):
        due = timezone.make_aware(due, UTC)
    late = (timezone.now() - due).total_seconds()
    grace = int(jobs_settings.MISFIRE_GRACE_SECONDS)
    if late <= grace:
        return None
    return {"missed": True, "late_seconds": round(late), "grace_seconds": grace}


def run_job_now(
    name: str,
    *,
    kwargs: dict[str, Any] | None = None,
    trigger: str = JobRun.Trigger.COMMAND,
    triggered_by: str = "",
) -> JobRun:
    """Run a job in this process (commands, tests) and return its finished JobRun."""
    kwargs = dict(kwargs or {})
    check_job_arguments(name, kwargs)
    run = lifecycle.new_run(
        name,
        trigger=trigger,
        triggered_by=triggered_by,
        kwargs=kwargs,
        scheduled_for=timezone.now(),
    )
    claimed = lifecycle.claim(run.pk)
    assert claimed is not None
    return execute_run(claimed, raise_errors=False)


def execute_run(run: JobRun, *, raise_errors: bool) -> JobRun:
    """Run a claimed JobRun to its end and record the outcome (and any retry)."""
    try:
        spec = get_job(run.job)
    except UnknownJob:
        # Queued before a release renamed or removed its job: nothing can run it, so it is
        # failed for good and let go (a worker's session would otherwise hold it for ever).
        error = f"{run.job!r} is not a registered job (renamed or removed since it was queued)"
        finish(run, JobRun.Status.FAILED, result={"permanent": True}, error=error[:10000])
        lifecycle.release(run.pk)
        if raise_errors:
            raise
        return run
    run_token = current.set_current_run(run)
    lease_token = current.set_current_lease(None)
    limit_token = soft_limit.start_soft_limit(spec.soft_limit_seconds)
    lease: locks.LeaseHandle | None = None
    try:
        if spec.single_flight:
            lease = _take_lock(run, spec)
            if lease is None:
                return run
            current.set_current_lease(lease)
        started = time.monotonic()
        with lifecycle.heartbeat(run):
            result = spec.func(**run.kwargs)
        if result is not None and not isinstance(result, dict):
            result = {"value": result}
        finish(
            run, JobRun.Status.SUCCEEDED, result=result or {}, elapsed=time.monotonic() - started
        )
        logger.info("%s #%s succeeded: %s", spec.name, run.pk, result)
        return run
    except SoftTimeLimitExceeded as exc:
        _record_timeout(run, spec, exc)
        return run
    except JobSkipped as exc:
        logger.warning("%s #%s skipped: %s", spec.name, run.pk, exc)
        result = {"skipped": True, "reason": str(exc), **exc.details}
        finish(run, JobRun.Status.SKIPPED, result=result)
        return run
    except BaseException as exc:  # SystemExit included: django-q2's timeout raises it
        _record_failure(run, spec, exc)
        if raise_errors or not isinstance(exc, Exception):
            raise
        return run
    finally:
        if lease is not None:
            safely(lambda: locks.release_run_leases(run.pk))
        lifecycle.release(run.pk)
        soft_limit.reset_soft_limit(limit_token)
        current.reset_current_lease(lease_token)
        current.reset_current_run(run_token)


def _record_timeout(run: JobRun, spec: JobSpec, exc: SoftTimeLimitExceeded) -> None:
    """Stopped at a safe point after the soft time limit: `timed out`, with what it did; not
    retried, the next run carries on from there."""
    view = describe_progress(run.progress)
    error = f"{exc}" + (f" after {view.text}" if view else "")
    logger.warning("%s #%s timed out: %s", spec.name, run.pk, error)
    result = {
        "timed_out": True,
        "soft_limit_seconds": spec.soft_limit_seconds,
        "progress": run.progress,
    }
    finish(run, JobRun.Status.TIMED_OUT, result=result, error=error[:10000])


def _take_lock(run: JobRun, spec: JobSpec) -> locks.LeaseHandle | None:
    """The run's lease, or None after recording the run skipped (naming the holder). A run
    queued by its own job (a chain's next hop, a retry) was handed a lock keyed by its
    arguments: finding it held, it was taken while it waited, so the run is flagged."""
    key = spec.lock_key(run.kwargs) if spec.lock_key else f"job:{spec.name}"
    lease, holder = lifecycle.take_lock(run, key)
    if lease is None:
        reason = lifecycle.holder_line(holder) if holder else f"lock {key} is held"
        logger.warning("%s skipped: %s", spec.name, reason)
        if (
            spec.lock_key is not None
            and run.parent_id
            and JobRun.objects.filter(pk=run.parent_id, job=run.job).exists()
        ):
            current.flag_for_attention(f"lock {key} was taken while this run waited to continue")
        result = {"skipped": True, "reason": reason, "lock_held": holder or {"key": key}}
        finish(run, JobRun.Status.SKIPPED, result=result)
        return None
    return lease


def _record_failure(run: JobRun, spec: JobSpec, exc: BaseException) -> None:
    """Record the failure; queue the next attempt (with the run's current kwargs) if due."""
    error = f"{type(exc).__name__}: {exc}"
    result: dict[str, Any] = {}
    delay = spec.retry.delay_for(attempt=run.attempt, error=exc)
    if delay is not None and not safely(lambda: lifecycle.claimed_by_us(run).exists()):
        result = {"taken_over": True}  # the new owner decides about retries (finish logs it)
    elif delay is not None:
        child = safely(
            lambda: enqueue_job(
                spec.name,
                kwargs=run.kwargs,
                trigger=JobRun.Trigger.RETRY,
                triggered_by=run.triggered_by,
                parent=run,
                attempt=run.attempt + 1,
                delay_seconds=delay,
            )
        )
        if child is not None:
            # A lock keyed by the job's arguments follows the work to its retry; the job-wide
            # lock (`job:<name>`) is freed by the failed run, not to hold up the next slot.
            if spec.single_flight and spec.lock_key is not None:
                safely(lambda: locks.hand_over_leases(from_run=run.pk, to_run=child.pk))
            result = {"retry_run_id": child.pk, "retry_in_seconds": round(delay, 3)}
    elif spec.retry.is_permanent(exc):
        result = {"permanent": True}  # whatever the attempt: no retry could fix it
    else:
        result = {"retries_exhausted": True}
    logger.error("%s #%s failed (attempt %s): %s %s", spec.name, run.pk, run.attempt, error, result)
    report_failed_run(run, exc)
    finish(
        run,
        JobRun.Status.FAILED,
        result=result,
        error=error[:10000],
        tb="".join(traceback.format_exception(exc))[-20000:],
    )
