"""Run a registered job and record it: claim, single-flight lock, heartbeat, result, retry.

Every path that runs a job goes through `execute_run`, so every run leaves a JobRun
row: scheduled (`run_scheduled_job`), queued from the admin, a command or a chain
(`enqueue_job` -> `execute_queued_run`), or in-process (`run_job_now`).

Delivery is at-least-once (django-q2 may hand the same task to two workers), so a
run is first *claimed* with one conditional UPDATE; a second delivery finds the run
already claimed and does nothing.
"""

import logging
import os
import socket
import threading
import time
import traceback
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs import context, locks, sql
from jobs.conf import jobs_settings
from jobs.exceptions import JobSkipped
from jobs.models import JobRun
from jobs.registry import JobSpec, get_job

logger = logging.getLogger("jobs")

EXECUTE_QUEUED_RUN = "jobs.runner.execute_queued_run"
RUN_SCHEDULED_JOB = "jobs.runner.run_scheduled_job"


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

    With `delay_seconds` the run is parked in a one-off django-q2 Schedule: django-q2
    has no delayed delivery, and its scheduler wakes every 30 s, so short delays
    round up to the next scheduler pass.
    """
    from django_q.models import Schedule
    from django_q.tasks import async_task

    spec = get_job(name)
    kwargs = dict(kwargs or {})
    spec.check_arguments(kwargs)
    now = timezone.now()
    run_at = now + timedelta(seconds=delay_seconds) if delay_seconds else None
    with transaction.atomic():
        run = JobRun.objects.create(
            job=name,
            trigger=trigger,
            triggered_by=triggered_by[:150],
            kwargs=kwargs,
            attempt=attempt,
            parent=parent,
            status=JobRun.Status.QUEUED,
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
            # After the commit, never before: a worker must find the row (with the Redis
            # broker the task leaves this process at once, outside any transaction).
            transaction.on_commit(lambda: _hand_to_cluster(run.pk, spec, async_task))
    return run


def _hand_to_cluster(run_id: int, spec: JobSpec, async_task: Any) -> None:
    """Queue a committed run; if the broker refuses (Redis down), fail the run, then raise.

    Without this the row would stay `queued` for ever: nothing would ever deliver it.
    """
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
    run = _claim(run_id)
    if run is None:
        logger.info("run %s already claimed or finished; duplicate delivery ignored", run_id)
        return {"duplicate_delivery": True, "run_id": run_id}
    run = execute_run(run, raise_errors=True)
    return {"run_id": run.pk, "status": run.status}


def run_scheduled_job(job_name: str, scheduled_for: str | None = None) -> dict[str, Any]:
    """django-q2 entry point of a cron Schedule (see jobs.services.schedules)."""
    get_job(job_name)
    task_id = context.queue_task_id()
    try:
        with transaction.atomic():
            run = JobRun.objects.create(
                job=job_name,
                trigger=JobRun.Trigger.SCHEDULE,
                triggered_by="scheduler",
                status=JobRun.Status.QUEUED,
                task_id=task_id,
                scheduled_for=scheduled_for,
            )
    except IntegrityError:
        logger.info("task %s of %s delivered twice; ignored", task_id, job_name)
        return {"duplicate_delivery": True, "task_id": task_id}
    claimed = _claim(run.pk)
    if claimed is None:  # pragma: no cover - we just created it
        return {"duplicate_delivery": True, "run_id": run.pk}
    claimed = execute_run(claimed, raise_errors=True)
    return {"run_id": claimed.pk, "status": claimed.status}


def run_job_now(
    name: str,
    *,
    kwargs: dict[str, Any] | None = None,
    trigger: str = JobRun.Trigger.COMMAND,
    triggered_by: str = "",
    raise_errors: bool = False,
) -> JobRun:
    """Run a job in this process (commands, tests) and return its finished JobRun."""
    spec = get_job(name)
    kwargs = dict(kwargs or {})
    spec.check_arguments(kwargs)
    run = JobRun.objects.create(
        job=name,
        trigger=trigger,
        triggered_by=triggered_by[:150],
        kwargs=kwargs,
        status=JobRun.Status.QUEUED,
        scheduled_for=timezone.now(),
    )
    claimed = _claim(run.pk)
    assert claimed is not None
    return execute_run(claimed, raise_errors=raise_errors)


def _claim(run_id: int) -> JobRun | None:
    now = timezone.now()
    stale_before = now - timedelta(seconds=jobs_settings.STALE_RUN_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.CLAIM_RUN,
            {
                "id": run_id,
                "now": now,
                "stale_before": stale_before,
                "host": socket.gethostname()[:255],
                "pid": os.getpid(),
                "task_id": context.queue_task_id(),
            },
        )
        if cursor.fetchone() is None:
            return None
    return JobRun.objects.get(pk=run_id)


def execute_run(run: JobRun, *, raise_errors: bool) -> JobRun:
    """Run a claimed JobRun to its end and record the outcome (and any retry)."""
    spec = get_job(run.job)
    token = context.set_current_run(run)
    lease: locks.LeaseHandle | None = None
    heartbeat: _Heartbeat | None = None
    try:
        if spec.single_flight:
            key = spec.lock_key_for(run.kwargs)
            lease = locks.acquire_lease(
                key=key, owner=f"run:{run.pk}", lease_seconds=spec.lease_seconds
            )
            if lease is None:
                holder = locks.lease_holder(key)
                reason = f"lock {key} is held by {holder[0] if holder else 'another run'}"
                logger.warning("%s skipped: %s", spec.name, reason)
                _finish(run, JobRun.Status.SKIPPED, result={"skipped": True, "reason": reason})
                return run
            _fail_lost_runs(spec, current_id=run.pk)
        heartbeat = _Heartbeat(run=run, lease=lease, lease_seconds=spec.lease_seconds)
        heartbeat.start()
        started = time.monotonic()
        result = spec.func(**run.kwargs)
        heartbeat.stop()
        if result is not None and not isinstance(result, dict):
            result = {"value": result}
        _finish(
            run, JobRun.Status.SUCCEEDED, result=result or {}, elapsed=time.monotonic() - started
        )
        logger.info("%s #%s succeeded: %s", spec.name, run.pk, result)
        return run
    except JobSkipped as exc:
        if heartbeat:
            heartbeat.stop()
        logger.warning("%s #%s skipped: %s", spec.name, run.pk, exc)
        _finish(run, JobRun.Status.SKIPPED, result={"skipped": True, "reason": str(exc)})
        return run
    except BaseException as exc:  # SystemExit included: django-q2's timeout raises it
        if heartbeat:
            heartbeat.stop()
        _record_failure(run, spec, exc)
        if raise_errors or not isinstance(exc, Exception):
            raise
        return run
    finally:
        if lease is not None:
            _safely(lambda: locks.release_lease(key=lease.key, owner=lease.owner))
        context.reset_current_run(token)


def _claimed_by_us(run: JobRun):
    """The run's row while it is still this worker's claim (the one `_claim` made).

    A worker cut off for longer than STALE_RUN_SECONDS may have been taken over (another
    worker's claim, or jobs.reap_lost_runs): its late writes must not overwrite the
    outcome of the worker that now owns the run.
    """
    return JobRun.objects.filter(
        pk=run.pk,
        status=JobRun.Status.RUNNING,
        started_at=run.started_at,
        host=run.host,
        pid=run.pid,
    )


def _record_failure(run: JobRun, spec: JobSpec, exc: BaseException) -> None:
    """Record the failure; queue the next attempt (with the run's current kwargs) if due."""
    error = f"{type(exc).__name__}: {exc}"
    result: dict[str, Any] = {}
    delay = spec.retry.delay_for(attempt=run.attempt, error=exc)
    if delay is not None and not _safely(lambda: _claimed_by_us(run).exists()):
        result = {"taken_over": True}  # the new owner decides about retries (_finish logs it)
    elif delay is not None:
        child = _safely(
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
            result = {"retry_run_id": child.pk, "retry_in_seconds": round(delay, 3)}
    elif run.attempt >= spec.retry.max_attempts:
        result = {"retries_exhausted": True}
    else:
        result = {"permanent": True}  # the policy never retries this kind of error
    logger.error("%s #%s failed (attempt %s): %s %s", spec.name, run.pk, run.attempt, error, result)
    _finish(
        run,
        JobRun.Status.FAILED,
        result=result,
        error=error[:10000],
        tb="".join(traceback.format_exception(exc))[-20000:],
    )


def _finish(
    run: JobRun,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str = "",
    tb: str = "",
    elapsed: float | None = None,
) -> None:
    now = timezone.now()
    run.status = status
    run.result = result
    run.error = error
    run.traceback = tb
    run.finished_at = now
    run.duration_seconds = (
        elapsed if elapsed is not None else (now - (run.started_at or now)).total_seconds()
    )
    fields = ["status", "result", "error", "traceback", "finished_at", "duration_seconds"]
    # needs_attention/progress may have been set through jobs.context by the job itself.
    updated = _safely(lambda: _claimed_by_us(run).update(**{f: getattr(run, f) for f in fields}))
    if updated == 0:
        logger.warning(
            "%s #%s was taken over by another worker while this one (%s pid %s) ran it;"
            " this worker's outcome (%s) is not recorded",
            run.job,
            run.pk,
            run.host,
            run.pid,
            status,
        )


def _fail_lost_runs(spec: JobSpec, *, current_id: int) -> None:
    """We hold the lock, so other `running` runs of the job with a stale heartbeat are dead."""
    cutoff = timezone.now() - timedelta(seconds=spec.lease_seconds)
    lost = JobRun.objects.filter(
        job=spec.name, status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff
    ).exclude(pk=current_id)
    count = lost.update(
        status=JobRun.Status.FAILED,
        finished_at=timezone.now(),
        error="worker lost: no heartbeat for longer than the lease; the next run took over",
    )
    if count:
        logger.warning("%s: marked %s lost run(s) failed", spec.name, count)


def _safely(action: Any, *, for_seconds: float | None = None) -> Any:
    """Run a bookkeeping write, riding out a database restart.

    After a failure the connection is dropped and the write retried with backoff for
    up to BOOKKEEPING_RETRY_SECONDS, so an outage of a few seconds still leaves the
    run recorded, its lease released and its retry queued. Gives up (and logs) after.
    """
    limit = float(
        for_seconds if for_seconds is not None else jobs_settings.BOOKKEEPING_RETRY_SECONDS
    )
    deadline = time.monotonic() + limit
    delay = 0.25
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() + delay > deadline:
                logger.exception("bookkeeping write failed for %.0fs; giving up", limit)
                return None
            logger.warning("bookkeeping write failed; reconnecting in %.2fs", delay, exc_info=True)
            try:
                connection.close()
            except Exception:  # pragma: no cover - a broken socket may fail to close
                pass
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class _Heartbeat:
    """Background thread: moves heartbeat_at and extends the lease while the job runs."""

    def __init__(self, *, run: JobRun, lease: locks.LeaseHandle | None, lease_seconds: int) -> None:
        self.run = run
        self.run_id = run_id = run.pk
        self.lease = lease
        self.lease_seconds = lease_seconds
        self.interval = max(0.5, min(float(jobs_settings.HEARTBEAT_SECONDS), lease_seconds / 3))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    if not _claimed_by_us(self.run).update(heartbeat_at=timezone.now()):
                        logger.warning("run %s was taken over by another worker", self.run_id)
                    if self.lease and not locks.extend_lease(
                        key=self.lease.key, owner=self.lease.owner, lease_seconds=self.lease_seconds
                    ):
                        logger.warning("run %s lost its lease %s", self.run_id, self.lease.key)
                except Exception:
                    logger.exception("heartbeat of run %s failed", self.run_id)
                    connection.close()
        finally:
            connection.close()
