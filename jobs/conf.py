"""Settings of the jobs core, read lazily (at use, never at import) with typed defaults."""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class _Setting:
    name: str
    default: object

    def get(self) -> object:
        return getattr(settings, self.name, self.default)


class JobsSettings:
    """`jobs_settings.HISTORY_DAYS` reads `settings.JOBS_HISTORY_DAYS` or the default."""

    _defaults: dict[str, object] = {
        #: Days of JobRun / django-q2 task history kept by jobs.prune_history.
        "HISTORY_DAYS": 90,
        #: Rows deleted per statement when pruning.
        "PRUNE_BATCH_SIZE": 5000,
        #: A running run whose heartbeat is older than this is considered lost.
        "STALE_RUN_SECONDS": 300,
        #: How long run bookkeeping (status, lease release, retry row) keeps retrying
        #: through a database outage before giving up.
        "BOOKKEEPING_RETRY_SECONDS": 60,
        #: Seconds between heartbeats (and lease extensions) of a running job.
        "HEARTBEAT_SECONDS": 20,
        #: /health/ warns about a running run whose heartbeat is older than this (3 beats).
        "HEARTBEAT_WARN_SECONDS": 60,
        #: A cron slot starting later than this is recorded `missed`, not run (seed 001's
        #: misfire_grace_time), unless its job is registered with run_late_once=True.
        "MISFIRE_GRACE_SECONDS": 300,
        #: A schedule whose next_run is this far in the past is reported overdue.
        "SCHEDULE_OVERDUE_SECONDS": 300,
        #: Failed runs in the last 24 h above which /health/ is unhealthy (0: no cap; a job
        #: whose latest run failed is unhealthy either way).
        "HEALTH_MAX_FAILURES_24H": 0,
        #: Notifications claimed per delivery batch.
        "OUTBOX_BATCH_SIZE": 100,
        #: A notification stuck in `sending` longer than this is claimed again.
        "OUTBOX_SENDING_TIMEOUT_SECONDS": 600,
        #: Queue rows waiting longer than this mean a cluster is not consuming.
        "QUEUE_STALL_SECONDS": 300,
        #: Times jobs.reap_lost_runs queues a lost run again before it records it failed.
        "REAP_MAX_REQUEUES": 3,
        #: Runs the reaper looks at per pass (the oldest first).
        "REAP_BATCH_SIZE": 500,
        #: Dotted functions the cluster may run besides the jobs core's two entry points
        #: (jobs.queue_guard); only benchmarks' no-op tasks belong here.
        "EXTRA_QUEUE_FUNCS": (),
    }

    def __getattr__(self, name: str) -> object:
        if name not in self._defaults:
            raise AttributeError(name)
        return getattr(settings, f"JOBS_{name}", self._defaults[name])


jobs_settings = JobsSettings()
