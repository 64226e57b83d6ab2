"""A run kept alive by another database session, as a worker keeps its run.

`LiveRun` claims the run from its own thread and connection (so the run's advisory lock
is held there, as jobs.lifecycle.claim does in a worker); `kill()` ends that session the
way kill -9 ends a worker's, without letting go of anything first.
"""

import threading

from django.db import connection

from jobs import lifecycle
from jobs.models import JobRun


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
        """End the session holding the run (nothing released, nothing recorded)."""
        self._end.set()
        self._thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.kill()


def dead_run(run: JobRun) -> JobRun:
    """`run` claimed by a session that then died: it says running, and nobody holds it."""
    LiveRun(run).__enter__().kill()
    run.refresh_from_db()
    return run
