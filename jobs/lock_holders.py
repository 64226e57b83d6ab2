"""Who holds a run's lock, whether it is alive, and what happens to a holder that died.

A run's single-flight lease is bound to its database session (jobs.locks), so a run
killed with kill -9 frees its lock as soon as PostgreSQL sees the session end: the next
run takes the lock over at once and records the dead run `failed` ("worker lost").
A run that cannot take the lock records who holds it (run, host, pid, heartbeat age,
when the lease frees), which `run_job` and the app commands print before exiting 3.
"""

import logging
import os
import socket
import time
from datetime import datetime
from typing import Any

from django.utils import timezone

from jobs import locks
from jobs.models import JobRun

logger = logging.getLogger("jobs")

#: Exit status of a manual run (`run_job`, app commands) that could not take its lock.
LOCK_HELD_EXIT_CODE = 3

#: How long a run waits for the session of a holder it knows is dead (its process on
#: this host is gone) to end: the server notices within about a second
#: (client_connection_check_interval, set by jobs.locks) or once the statement ends.
DEAD_HOLDER_WAIT_SECONDS = 5.0


def run_id_of(owner: str) -> int | None:
    """The JobRun id in a run's owner token ("run:105"), else None."""
    prefix, _, rest = owner.partition(":")
    return int(rest) if prefix == "run" and rest.isdigit() else None


def describe_holder(key: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """What an operator needs about the lease of `key`: None when nobody holds it."""
    lease = locks.lease_row(key)
    if lease is None:
        return None
    now = now or timezone.now()
    info: dict[str, Any] = {
        "key": key,
        "owner": lease.owner,
        "lease_expires_at": lease.expires_at.isoformat(),
        "lease_frees_in_seconds": max(0, round((lease.expires_at - now).total_seconds())),
        "session_bound": lease.session_pid is not None,
    }
    run_id = run_id_of(lease.owner)
    run = JobRun.objects.filter(pk=run_id).first() if run_id else None
    if run is not None:
        info.update(run_id=run.pk, job=run.job, status=run.status, host=run.host, pid=run.pid)
        if run.heartbeat_at is not None:
            info["heartbeat_age_seconds"] = round((now - run.heartbeat_at).total_seconds(), 1)
    return info


def holder_line(info: dict[str, Any]) -> str:
    """One line for a person: who holds the lock and when it frees."""
    who = info["owner"]
    if "run_id" in info:
        who += f" ({info['job']}, {info['status']}) on host {info['host'] or '?'}"
        who += f" pid {info['pid'] or '?'}"
    beat = info.get("heartbeat_age_seconds")
    beat_text = f", heartbeat {beat:.0f} s ago" if beat is not None else ""
    frees = f"the lease frees at {info['lease_expires_at']} (in {info['lease_frees_in_seconds']} s)"
    if info.get("session_bound"):
        frees += " or as soon as its database session ends"
    return f"lock {info['key']} is held by {who}{beat_text}; {frees}"


def holder_died_here(info: dict[str, Any] | None) -> bool:
    """The holder's run was on this host and its process no longer exists."""
    if not info or "run_id" not in info or not info.get("pid"):
        return False
    if info["host"] != socket.gethostname()[:255] or info["pid"] == os.getpid():
        return False
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def acquire_run_lease(
    *, key: str, owner: str, lease_seconds: int
) -> tuple[locks.LeaseHandle | None, dict[str, Any] | None]:
    """The run's session-bound lease, or (None, holder) when a live run holds it.

    A holder whose process is known dead (same host, pid gone) is waited for, up to
    DEAD_HOLDER_WAIT_SECONDS, while the server ends its session.
    """
    deadline = time.monotonic() + DEAD_HOLDER_WAIT_SECONDS
    while True:
        lease = locks.acquire_lease(
            key=key, owner=owner, lease_seconds=lease_seconds, bind_session=True
        )
        if lease is not None:
            return lease, None
        holder = describe_holder(key)
        if time.monotonic() > deadline or (holder is not None and not holder_died_here(holder)):
            return None, holder
        # The holder is dead (its session is ending) or released the lease meanwhile.
        time.sleep(0.1)


def mark_lost_holder(lease: locks.LeaseHandle, *, job: str, taken_by: int) -> int | None:
    """Record the run we took the lease from `failed` (worker lost), if it still says running.

    Its session ended (the process died) or its lease expired without a heartbeat
    extending it: either way it no longer runs, and nothing else would record that.
    """
    lost_id = run_id_of(lease.taken_from)
    if lost_id is None or lost_id == taken_by:
        return None
    error = (
        f"worker lost: its lock {lease.key} was taken over by run #{taken_by} because its "
        f"{lease.taken_reason} (process killed or crashed)"
    )
    updated = JobRun.objects.filter(pk=lost_id, status=JobRun.Status.RUNNING).update(
        status=JobRun.Status.FAILED, finished_at=timezone.now(), error=error
    )
    if updated:
        logger.warning("%s: run #%s marked lost: %s", job, lost_id, error)
    return lost_id if updated else None
