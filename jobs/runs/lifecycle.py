"""A run's life: create, claim, heartbeat, finish, lock, lost, release.

One rule says whether a run is alive (jobs.sql.RUN_ALIVE): a database session holds the
run's advisory lock, taken by `claim` and let go by `release`. PostgreSQL drops it with
the session, so a worker killed with kill -9 leaves a run that is dead at once: its
redelivery claims it again, the next run takes its lock over and records it lost, and
/health/ and the reaper see it. Every step is one conditional statement, so two workers
never both win one.

    queued --claim--> running --finish--> succeeded | failed | timed_out | skipped
    running (not alive) --take_lock / mark_lost--> failed ("worker lost")
    queued (task lost) | running (not alive) --reaper--> queued again
"""

import logging
import os
import socket
import threading
import time
from datetime import datetime
from typing import Any

from django.db import connection
from django.dispatch import Signal
from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun
from jobs.runs import locks
from jobs.runs.queue_task import queue_task_id

logger = logging.getLogger("jobs")

#: Sent with `run=` once a run's outcome is recorded (by `finish`, or a slot recorded
#: missed): the alerts listen, so the run's life does not depend on who is told.
run_finished = Signal()

#: Exit status of a manual run (`run_job`, app commands) that could not take its lock.
LOCK_HELD_EXIT_CODE = 3


def new_run(
    name: str,
    *,
    trigger: str,
    triggered_by: str = "",
    kwargs: dict[str, Any] | None = None,
    parent: JobRun | None = None,
    attempt: int = 1,
    scheduled_for: datetime | str | None = None,
    **fields: Any,
) -> JobRun:
    """An unsaved `queued` JobRun of job `name` (other `fields`, e.g. status, override)."""
    return JobRun(
        job=name,
        trigger=trigger,
        triggered_by=triggered_by[:150],
        kwargs=dict(kwargs or {}),
        parent=parent,
        attempt=attempt,
        status=fields.pop("status", JobRun.Status.QUEUED),
        scheduled_for=scheduled_for,
        **fields,
    )


def _execute(statement: str, params: dict[str, Any]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def claim(run_id: int) -> JobRun | None:
    """Make a queued run (or one whose worker is gone) this worker's; None: not ours.

    The run's advisory lock comes first: holding it proves no live session runs it.
    """
    if not _execute(sql.LOCK_RUN, {"id": run_id})[0]:
        return None
    params = {
        "id": run_id,
        "now": timezone.now(),
        "host": socket.gethostname()[:255],
        "pid": os.getpid(),
        "task_id": queue_task_id(),
    }
    if _execute(sql.CLAIM_RUN, params) is None:
        release(run_id)
        return None
    return JobRun.objects.get(pk=run_id)


def release(run_id: int) -> None:
    """Let go of the run's advisory lock (after its outcome is recorded)."""
    safely(lambda: _execute(sql.UNLOCK_RUN, {"id": run_id}))


def claimed_by_us(run: JobRun):
    """The run's row while it is still this worker's claim: a worker whose session was cut
    (a database restart) may have been taken over, and must not overwrite the new owner."""
    return JobRun.objects.filter(
        pk=run.pk,
        status=JobRun.Status.RUNNING,
        started_at=run.started_at,
        host=run.host,
        pid=run.pid,
    )


def finish(
    run: JobRun,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str = "",
    tb: str = "",
    elapsed: float | None = None,
) -> None:
    """Record the run's outcome, only while it is still this worker's claim."""
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
    # needs_attention/progress may have been set by the job itself (jobs.runs.current, jobs.runs.progress).
    updated = safely(lambda: claimed_by_us(run).update(**{f: getattr(run, f) for f in fields}))
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
        return
    run_finished.send(sender=JobRun, run=run)


def take_lock(run: JobRun, key: str) -> tuple[locks.LeaseHandle | None, dict[str, Any] | None]:
    """The run's lease on `key`, or (None, holder) while a live or queued run holds it.

    Taking it over from a run that still says running records that run lost, and with it
    any other run of the job whose worker is gone.
    """
    lease = locks.acquire_lease(key=key, owner=f"run:{run.pk}", run_id=run.pk)
    if lease is None:
        return None, describe_holder(key)
    reason = lease.taken_reason if lease.taken_run else "database session ended"
    mark_lost(
        ids=[lease.taken_run] if lease.taken_run else [],
        job=run.job,
        reason=(
            f"worker lost: its lock {key} was taken over by run #{run.pk} because its "
            f"{reason} (process killed or crashed)"
        ),
        keep=run.pk,
    )
    return lease, None


def mark_lost(*, ids: list[int], job: str = "", reason: str, keep: int = 0) -> list[int]:
    """Record `failed` the running runs among `ids` (and of `job`) that are not alive."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.FAIL_LOST_RUNS,
            {"ids": ids, "job": job, "keep": keep, "now": timezone.now(), "reason": reason},
        )
        lost = [row[0] for row in cursor.fetchall()]
    if lost:
        logger.warning("runs %s marked lost: %s", lost, reason)
    return lost


def lost_run_ids(*, limit: int = 10) -> list[int]:
    """Ids of running runs that are not alive (their worker died), oldest heartbeat first."""
    with connection.cursor() as cursor:
        cursor.execute(sql.LOST_RUNS, {"limit": limit})
        return [row[0] for row in cursor.fetchall()]


def lost_runs(*, limit: int = 10) -> list[JobRun]:
    """Running runs that are not alive, oldest heartbeat first."""
    ids = lost_run_ids(limit=limit)
    return sorted(JobRun.objects.filter(pk__in=ids), key=lambda run: ids.index(run.pk))


def lease_held(key: str) -> bool:
    """Whether the lease of `key` is held by the liveness rule (False: none, or dead)."""
    row = _execute(sql.LEASE_IS_HELD, {"key": key, "now": timezone.now()})
    return bool(row and row[0])


def held_lease_keys() -> list[str]:
    """The keys of every lease held by the liveness rule, in key order."""
    with connection.cursor() as cursor:
        cursor.execute(sql.HELD_LEASE_KEYS, {"now": timezone.now()})
        return [row[0] for row in cursor.fetchall()]


def describe_holder(key: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """What an operator needs about the lease of `key`: None when nobody holds it."""
    lease = locks.lease_row(key)
    if lease is None:
        return None
    now = now or timezone.now()
    info: dict[str, Any] = {"key": key, "owner": lease.owner}
    if lease.expires_at is not None:
        info["lease_expires_at"] = lease.expires_at.isoformat()
        info["lease_frees_in_seconds"] = max(0, round((lease.expires_at - now).total_seconds()))
    run = JobRun.objects.filter(pk=lease.run_id).first() if lease.run_id else None
    if run is not None:
        if lease.owner.startswith("run:") and lease.owner != f"run:{run.pk}":
            # handed on by the run that took it: named by the run that continues the work
            retry = run.trigger == JobRun.Trigger.RETRY
            info["owner"] = f"the {'retry' if retry else 'chain of'} run #{run.pk}"
        info.update(run_id=run.pk, job=run.job, status=run.status, host=run.host, pid=run.pid)
        if run.heartbeat_at is not None:
            info["heartbeat_age_seconds"] = round((now - run.heartbeat_at).total_seconds(), 1)
    return info


def holder_line(info: dict[str, Any]) -> str:
    """One line for a person: who holds the lock and when it frees."""
    who = info["owner"]
    if "run_id" in info:
        if f"#{info['run_id']}" not in who and who != f"run:{info['run_id']}":
            who += f" (run #{info['run_id']})"
        who += f" ({info['job']}, {info['status']}) on host {info['host'] or '?'}"
        who += f" pid {info['pid'] or '?'}"
    beat = info.get("heartbeat_age_seconds")
    beat_text = f", heartbeat {beat:.0f} s ago" if beat is not None else ""
    if "lease_expires_at" in info:
        frees = (
            f"the lease frees at {info['lease_expires_at']} (in {info['lease_frees_in_seconds']} s)"
        )
    else:
        frees = "it frees when that run ends, or as soon as its database session ends"
    return f"lock {info['key']} is held by {who}{beat_text}; {frees}"


def safely(action: Any, *, for_seconds: float | None = None) -> Any:
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


class Heartbeat:
    """Background thread that moves `heartbeat_at` while the job runs: the operator's
    "last seen" in the admin and in a lock holder's description. Liveness is not decided
    on it (see RUN_ALIVE), so a slow beat never lets a second run start.
    """

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self.interval = max(0.5, float(jobs_settings.HEARTBEAT_SECONDS))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run.pk}", daemon=True)

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
                    claimed_by_us(self.run).update(heartbeat_at=timezone.now())
                except Exception:
                    logger.exception("heartbeat of run %s failed", self.run.pk)
                    connection.close()
        finally:
            connection.close()
