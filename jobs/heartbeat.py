"""A running job's heartbeat thread, and bookkeeping writes that ride out a database restart.

Both protect the run's record while the job works: the heartbeat moves `heartbeat_at`
and extends the lease, and `safely` retries the runner's own writes (outcome, lease
release, retry row) through a short outage. Neither writes once the run was taken over
by another worker (`claimed_by_us`).
"""

import logging
import threading
import time
from typing import Any

from django.db import connection
from django.utils import timezone

from jobs import locks
from jobs.conf import jobs_settings
from jobs.models import JobRun

logger = logging.getLogger("jobs")


def claimed_by_us(run: JobRun):
    """The run's row while it is still this worker's claim (the one jobs.run_records.claim made).

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
    """Background thread: moves heartbeat_at and extends the lease while the job runs.

    It has its own database connection (Django's are per thread), so the lease stays
    bound to the job's session (jobs.locks), not to this thread's.
    """

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
                    self._beat_once()
                except Exception:
                    logger.exception("heartbeat of run %s failed", self.run_id)
                    connection.close()
        finally:
            connection.close()

    def _beat_once(self) -> None:
        if not claimed_by_us(self.run).update(heartbeat_at=timezone.now()):
            logger.warning("run %s was taken over by another worker", self.run_id)
        if self.lease and not locks.extend_lease(
            key=self.lease.key, owner=self.lease.owner, lease_seconds=self.lease_seconds
        ):
            logger.warning("run %s lost its lease %s", self.run_id, self.lease.key)
