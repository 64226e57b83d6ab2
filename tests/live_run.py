"""A run kept alive by another database session, as a worker keeps its run.

`LiveRun` claims the run from its own thread and connection (so the run's advisory lock
is held there, as jobs.runs.lifecycle.claim does in a worker); `kill()` ends that session the
way kill -9 ends a worker's, without letting go of anything first.
"""

import threading
import time
from datetime import datetime

from django.db import connection

from jobs.models import JobRun
from jobs.runs import lifecycle, locks


class LiveRun:
    def __init__(self, run: JobRun) -> None:
        self.run = run
        self._claimed = threading.Event()
        self._end = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        try:
            claimed = lifecycle.claim(self.run.pk)
            assert claimed is not None, f"run #{self.run.pk} could not be claimed"
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.backend_pid = cursor.fetchone()[0]
            self._claimed.set()
            self._end.wait(30)
        finally:
            connection.close()

    def __enter__(self) -> "LiveRun":
        self._thread.start()
        assert self._claimed.wait(10), "the live run's session did not claim it"
        self.run.refresh_from_db()
        return self

    def kill(self) -> None:
        """End the session holding the run (nothing released, nothing recorded), and wait
        for the server to end it: its locks go with the backend, a moment after the client."""
        self._end.set()
        self._thread.join(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [self.backend_pid])
                if cursor.fetchone() is None:
                    return
            time.sleep(0.01)
        raise AssertionError(f"the session of run #{self.run.pk} did not end")

    def __exit__(self, *exc: object) -> None:
        self.kill()


def dead_run(run: JobRun) -> JobRun:
    """`run` claimed by a session that then died: it says running, and nobody holds it."""
    LiveRun(run).__enter__().kill()
    run.refresh_from_db()
    return run


def lease_holder(key: str) -> tuple[str, datetime | None] | None:
    """(owner, expires_at) of the lease row of `key`, if any."""
    lease = locks.lease_row(key)
    return (lease.owner, lease.expires_at) if lease else None
