"""App settings, read lazily (at use, never at import) through one typed object per app.

Every app declares its settings the same way, as `Setting`s on an `AppSettings`
subclass with a prefix; `jobs_settings.HISTORY_DAYS` reads `settings.JOBS_HISTORY_DAYS`
at each access, else the default (an empty value counts as unset). A setting declared `env=True` may also come from the
environment variable of the same name (secrets and endpoints that the qcluster processes
get from their environment); a value in Django settings wins.
"""

import os
from typing import Any, Generic, TypeVar, overload

from django.conf import settings

T = TypeVar("T", int, float, str, bool)

_TRUE = {"1", "true", "yes", "on"}


class Setting(Generic[T]):
    """One setting of an app: its typed default, looked up when read."""

    def __init__(self, default: T, *, env: bool = False) -> None:
        self.default = default
        self.env = env
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> "Setting[T]": ...

    @overload
    def __get__(self, instance: "AppSettings", owner: type) -> T: ...

    def __get__(self, instance: "AppSettings | None", owner: type) -> "T | Setting[T]":
        if instance is None:
            return self
        full_name = f"{instance.prefix}_{self.name}"
        value = getattr(settings, full_name, None)
        if value in (None, "") and self.env:
            value = self._parse(os.environ.get(full_name) or None)
        return self.default if value in (None, "") else value

    def _parse(self, raw: str | None) -> Any:
        if raw is None:
            return None
        if isinstance(self.default, bool):
            return raw.strip().lower() in _TRUE
        return type(self.default)(raw)


class AppSettings:
    """Base of an app's settings object: `prefix` plus one `Setting` per name."""

    prefix: str = ""


class JobsSettings(AppSettings):
    """Settings of the jobs core (`JOBS_*`)."""

    prefix = "JOBS"

    #: Days of JobRun / django-q2 task history kept by jobs.prune_history.
    HISTORY_DAYS = Setting(90)
    #: Rows deleted per statement when pruning.
    PRUNE_BATCH_SIZE = Setting(5000)
    #: A running run whose heartbeat is older than this is considered lost.
    STALE_RUN_SECONDS = Setting(300)
    #: How long run bookkeeping (status, lease release, retry row) keeps retrying
    #: through a database outage before giving up.
    BOOKKEEPING_RETRY_SECONDS = Setting(60)
    #: Seconds between heartbeats (and lease extensions) of a running job.
    HEARTBEAT_SECONDS = Setting(20)
    #: A schedule whose next_run is this far in the past is reported overdue.
    SCHEDULE_OVERDUE_SECONDS = Setting(300)
    #: Failed runs in the last 24 h above which /health/ is unhealthy (0: no cap; a job
    #: whose latest run failed is unhealthy either way).
    HEALTH_MAX_FAILURES_24H = Setting(0)
    #: Notifications claimed per delivery batch.
    OUTBOX_BATCH_SIZE = Setting(100)
    #: A notification stuck in `sending` longer than this is claimed again.
    OUTBOX_SENDING_TIMEOUT_SECONDS = Setting(600)
    #: Queue rows waiting longer than this mean a cluster is not consuming.
    QUEUE_STALL_SECONDS = Setting(300)
    #: Times jobs.reap_lost_runs queues a lost run again before it records it failed.
    REAP_MAX_REQUEUES = Setting(3)
    #: Runs the reaper looks at per pass (the oldest first).
    REAP_BATCH_SIZE = Setting(500)


jobs_settings = JobsSettings()
