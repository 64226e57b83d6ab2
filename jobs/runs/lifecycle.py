"""A run's life: create, claim, heartbeat, finish, lock, lost, release, each one conditional
statement; whether a run is alive is jobs.sql.RUN_ALIVE alone (docs/architecture.md)."""

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.dispatch import Signal
from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun, Lease
from jobs.runs import locks
from jobs.runs.queue_task import queue_task_id

logger = logging.getLogger("jobs")

#: Sent with `run=` once a run's outcome is recorded (by `finish`, a slot recorded missed,
#: a task the queue guard refused): the alerts listen, so a run's life imports none of them.
run_finished = Signal()

#: Exit status of a manual run (`run_job`, app commands) that could not take its lock.
LOCK_HELD_EXIT_CODE = 3


def new_run(name: str, *, triggered_by: str = "", **fields: Any) -> JobRun:
    """Insert a run of job `name`: `queued` unless `fields` (trigger, kwargs...) say else."""
    return JobRun.objects.create(job=name, triggered_by=triggered_by[:150], **fields)


def claim(run_id: int) -> JobRun | None:
    """Make a queued run (or one whose worker is gone) this worker's; None: not ours.

    The run's advisory lock comes first: holding it proves no live session runs it.
    """
    if not sql.fetch(sql.LOCK_RUN, {"id": run_id})[0][0]:
        return None
    params = {
        "id": run_id,
        "now": timezone.now(),
        "host": socket.gethostname()[:255],
        "pid": os.getpid(),
        "task_id": queue_task_id(),
    }
    if not sql.fetch(sql.CLAIM_RUN, params):
        release(run_id)
        return None
    return JobRun.objects.get(pk=run_id)


def release(run_id: int) -> None:
    """Let go of the run's advisory lock (after its outcome is recorded)."""
    safely(lambda: sql.fetch(sql.UNLOCK_RUN, {"id": run_id}))


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
    """Record the run's outcome, only while it is still this worker's claim (only these
    fields: the job itself may have set needs_attention and progress)."""
    now = timezone.now()
    if elapsed is None:
        elapsed = (now - (run.started_at or now)).total_seconds()
    fields = {"status": status, "result": result, "error": error, "traceback": tb}
    fields.update(finished_at=now, duration_seconds=elapsed)
    for name, value in fields.items():
        setattr(run, name, value)
    updated = safely(lambda: claimed_by_us(run).update(**fields))
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

    Taking it records lost (`failed`) the run it was taken from if that still says running,
    and any other running run of the job that is not alive.
    """
    lease = locks.acquire_lease(key=key, owner=f"run:{run.pk}", run_id=run.pk)
    if lease is None:
        return None, describe_holder(locks.lease_row(key))
    reason = (
        f"worker lost: its lock {key} was taken over by run #{run.pk} because its "
        f"{lease.taken_reason if lease.taken_run else 'database session ended'}"
        " (process killed or crashed)"
    )
    ids = [lease.taken_run] if lease.taken_run else []
    params = {"ids": ids, "job": run.job, "keep": run.pk, "now": timezone.now(), "reason": reason}
    lost = [row[0] for row in sql.fetch(sql.FAIL_LOST_RUNS, params)]
    if lost:
        logger.warning("runs %s marked lost: %s", lost, reason)
    return lease, None


def lost_run_ids(*, limit: int = 10) -> list[int]:
    """Ids of running runs that are not alive (their worker died), oldest heartbeat first."""
    return [row[0] for row in sql.fetch(sql.LOST_RUNS, {"limit": limit})]


def lost_runs(*, limit: int = 10) -> list[JobRun]:
    """Running runs that are not alive, oldest heartbeat first."""
    ids = lost_run_ids(limit=limit)
    return sorted(JobRun.objects.filter(pk__in=ids), key=lambda run: ids.index(run.pk))


def lease_held(key: str) -> bool:
    """Whether the lease of `key` is held by the liveness rule (False: none, or dead)."""
    return held_lease_keys(key) == [key]


def held_lease_keys(key: str | None = None) -> list[str]:
    """The keys of every lease (or of `key`'s) held by the liveness rule, in key order."""
    return [row[0] for row in sql.fetch(sql.HELD_LEASE_KEYS, {"key": key, "now": timezone.now()})]


def describe_holder(lease: Lease | None) -> dict[str, Any] | None:
    """What an operator needs about a lease row (None: nobody holds it)."""
    if lease is None:
        return None
    now = timezone.now()
    info: dict[str, Any] = {"key": lease.key, "owner": lease.owner}
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


@dataclass(frozen=True)
class Verdict:
    #: True when a live holder keeps the lease (release refused).
    alive: bool
    #: What was found, for the operator: "run #12 running, heartbeat 4 s ago".
    detail: str


def judge(lease: Lease) -> Verdict:
    """Whether a live holder keeps `lease`, and what an operator should read about it."""
    info = describe_holder(lease)
    if "run_id" in info:
        detail = f"run #{info['run_id']} is {info['status']}"
        if info.get("heartbeat_age_seconds") is not None:
            detail += f", heartbeat {info['heartbeat_age_seconds']:.0f} s ago"
    elif lease.run_id is not None:
        detail = f"run #{lease.run_id} is gone"
    elif lease.expires_at is not None and lease.expires_at < timezone.now():
        detail = f"expired {int((timezone.now() - lease.expires_at).total_seconds())} s ago"
    else:
        detail = f"held by {lease.owner} until {lease.expires_at:%H:%M:%S} UTC"
    return Verdict(lease_held(lease.key), detail)


def release_dead_leases(leases: list[Lease]) -> tuple[list[str], list[str]]:
    """Release the leases whose holder is gone: (released keys, refused "key: why" lines).
    A live holder's lease would let a second copy of its work start; the DELETE re-checks
    the rule, for a holder alive again meanwhile."""
    released, refused = [], []
    for lease in leases:
        verdict = judge(lease)
        if verdict.alive:
            refused.append(f"{lease.key}: {verdict.detail}")
            continue
        params = {"key": lease.key, "owner": lease.owner, "now": timezone.now()}
        if sql.fetch(sql.RELEASE_DEAD_LEASE, params):
            released.append(lease.key)
        else:
            refused.append(f"{lease.key}: changed meanwhile (its holder is alive again)")
    return released, refused


def safely(action: Any) -> Any:
    """Run a bookkeeping write, riding out a database restart: after a failure, reconnect and
    retry with backoff for up to BOOKKEEPING_RETRY_SECONDS, then give up (and log)."""
    limit = float(jobs_settings.BOOKKEEPING_RETRY_SECONDS)
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
            with suppress(Exception):  # a broken socket may fail to close
                connection.close()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


@contextmanager
def heartbeat(run: JobRun) -> Iterator[None]:
    """Move `heartbeat_at` from a background thread meanwhile: the operator's "last seen".
    Liveness is not decided on it (RUN_ALIVE), so a slow beat never lets a second run start.
    """
    stop = threading.Event()
    interval = max(0.5, float(jobs_settings.HEARTBEAT_SECONDS))

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    claimed_by_us(run).update(heartbeat_at=timezone.now())
                except Exception:
                    logger.exception("heartbeat of run %s failed", run.pk)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{run.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
