"""App settings, read at each access (never at import) through one object per app: how an
app declares them is in docs/architecture.md "Settings". An empty value counts as unset;
`env=True` settings (secrets, endpoints the qclusters get from their environment) may
come from the environment variable of the same name, and Django settings win."""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings as django_settings
from django.core import checks

from jobs.exceptions import UnknownJob
from jobs.registry import get_job

#: What a true boolean setting reads as in the environment (case-insensitive).
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Setting:
    """One setting of an app: its default (which also gives its type), looked up when read."""

    default: int | float | str | bool | tuple[str, ...]
    #: Also read the environment variable `<PREFIX>_<NAME>` when Django settings lack it.
    env: bool = False
    #: A number may be 0 because 0 means something ("no cap", "at once"); otherwise it must
    #: be above 0 (check_number_settings).
    zero_ok: bool = False

    def parse(self, raw: str) -> Any:
        """An environment value, as the type of the default."""
        if isinstance(self.default, bool):
            return raw.strip().lower() in TRUE_WORDS
        if isinstance(self.default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return type(self.default)(raw)


class AppSettings:
    """Base of an app's settings object: `prefix` plus the table of its `settings`."""

    prefix: ClassVar[str] = ""
    settings: ClassVar[dict[str, Setting]] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in self.settings:
            raise AttributeError(name)
        return self.value(name)

    def value(self, name: str) -> Any:
        """The setting `name` as configured (or its default); a subclass's property that
        derives a value (a bound, a parsed list) reads it through here."""
        setting = self.settings[name]
        full_name = f"{self.prefix}_{name}"
        value = getattr(django_settings, full_name, None)
        if value in (None, "") and setting.env and os.environ.get(full_name):
            value = setting.parse(os.environ[full_name])
        return setting.default if value in (None, "") else value


class JobsSettings(AppSettings):
    """Settings of the jobs core (`JOBS_*`)."""

    prefix = "JOBS"
    settings = {
        #: Days of JobRun / django-q2 task history kept by jobs.prune_history.
        "HISTORY_DAYS": Setting(90),
        #: Rows deleted per statement when pruning.
        "PRUNE_BATCH_SIZE": Setting(5000),
        #: How long run bookkeeping keeps retrying through a database outage before giving up.
        "BOOKKEEPING_RETRY_SECONDS": Setting(60),
        #: Seconds between heartbeats of a running job (the admin's "last seen"; whether
        #: a run is alive is jobs.runs.lifecycle's rule, not its heartbeat's age).
        "HEARTBEAT_SECONDS": Setting(20),
        #: A cron slot starting later than this is recorded `missed` unless run_late_once.
        "MISFIRE_GRACE_SECONDS": Setting(300),
        #: A schedule whose next_run is this far in the past is reported overdue.
        "SCHEDULE_OVERDUE_SECONDS": Setting(300),
        #: Failed runs in the last 24 h above which /health/ is unhealthy (0: no cap; a job
        #: whose latest run failed is unhealthy either way).
        "HEALTH_MAX_FAILURES_24H": Setting(0, zero_ok=True),
        #: Notifications claimed per delivery batch.
        "OUTBOX_BATCH_SIZE": Setting(100),
        #: A notification stuck in `sending` longer than this is claimed again.
        "OUTBOX_SENDING_TIMEOUT_SECONDS": Setting(600),
        #: Queue rows waiting longer than this mean a cluster is not consuming.
        "QUEUE_STALL_SECONDS": Setting(300),
        #: Times jobs.reap_lost_runs queues a lost run again before it records it failed.
        "REAP_MAX_REQUEUES": Setting(3, zero_ok=True),
        #: Runs the reaper looks at per pass (the oldest first).
        "REAP_BATCH_SIZE": Setting(500),
        #: Functions the cluster may run besides our two entry points: benchmarks' no-op tasks.
        "EXTRA_QUEUE_FUNCS": Setting(()),
        #: Staff addresses alerts are emailed to (through the outbox); empty: no email.
        "ALERT_EMAILS": Setting((), env=True),
        #: A Slack-compatible incoming webhook for alerts; a secret, never stored or shown.
        "ALERT_WEBHOOK_URL": Setting("", env=True),
        #: Base URL of the admin for alert links ("https://jobs.example.com"); empty: paths.
        "ALERT_BASE_URL": Setting("", env=True),
        #: An open alert whose job keeps having problems is told again after this long.
        "ALERT_REPEAT_HOURS": Setting(24),
        #: /health/ runs the alert watchdog at most once per this many seconds per process.
        "ALERT_WATCH_SECONDS": Setting(30, zero_ok=True),
        #: An alert undelivered this long after it was due is delivered by the web process.
        "ALERT_FALLBACK_SECONDS": Setting(120, zero_ok=True),
    }


jobs_settings = JobsSettings()


def check_number_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """System check of every app's number settings: one that is not a number, or 0 where 0
    would delete everything or never finish (a cart retention of 0 deletes live carts, a
    batch size of 0 loops), stops start-up (`check`, `migrate`, `qcluster`), not a run."""
    errors = []
    for app in AppSettings.__subclasses__():
        for name, setting in app.settings.items():
            if isinstance(setting.default, bool) or not isinstance(setting.default, int | float):
                continue
            value = os.environ.get(f"{app.prefix}_{name}")  # shown if it does not parse
            try:
                value = app().value(name)
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if math.isfinite(number) and (number > 0 or (number == 0 and setting.zero_ok)):
                continue
            bound = "0 or more" if setting.zero_ok else "above 0"
            errors.append(
                checks.Error(
                    f"{app.prefix}_{name} is {value!r}: it must be a number {bound}",
                    id="jobs.E204",
                )
            )
    return errors


def job_entries(name: str, *, error: type[Exception], what: str = "value") -> Mapping[str, Any]:
    """A per-job setting: `settings.<name>` (a dict of job name -> value), else the
    environment variable `<name>` ("job=value; other=value"); `error` for a bad shape or
    an unknown job (`what` names the value in its message). The values are unchecked."""
    entries = getattr(django_settings, name, None)
    if entries is not None and not isinstance(entries, Mapping):
        raise error(f"{name} must be a dict of job name -> {what}")
    if entries is None:
        entries = {}
        for item in filter(None, map(str.strip, os.environ.get(name, "").split(";"))):
            job, sep, value = item.partition("=")
            if not sep:
                raise error(
                    f"{name}: {item!r} is not NAME={what.upper()} (entries are separated by ';')"
                )
            entries[job.strip()] = value.strip()
    for job in entries:
        try:
            get_job(job)
        except UnknownJob as exc:
            raise error(f"{name}: {exc}") from None
    return entries
