"""Cron schedules set or changed from settings: an operator turns a job on without code.

    JOBS_SCHEDULES = {"commerce.cleanup_old_audit_logs": "0 4 * * *"}    # settings
    JOBS_SCHEDULES="commerce.cleanup_old_audit_logs=0 4 * * *; jobs.prune_history=off"  # env

The setting wins over the environment variable. A value sets the job's cron (UTC);
"off" (or None in settings) makes a scheduled job on-demand only. Every entry is
checked before anything is used: an unknown job, a bad cron or a job that cannot run
without arguments raises ScheduleOverrideError with one line naming it, so `sync_schedules` stops and changes
nothing. `sync_schedules`, `list_jobs` and the jobs dashboard read the effective cron
from here (owners configure cleanup schedules without a code change).
"""

from collections.abc import Mapping

from croniter import croniter

from jobs.arguments import check_job_arguments
from jobs.conf import job_entries
from jobs.exceptions import BadJobArguments, JobsError, UnknownJob
from jobs.registry import JobSpec, get_job

ENV_VAR = "JOBS_SCHEDULES"
OFF = "off"


class ScheduleOverrideError(JobsError):
    """JOBS_SCHEDULES names an unknown job or a bad cron expression."""


def schedule_overrides() -> dict[str, str | None]:
    """Job name -> cron (None: off), every entry validated."""
    checked: dict[str, str | None] = {}
    for name, cron in job_entries(ENV_VAR, error=ScheduleOverrideError, what="cron").items():
        try:
            get_job(name)
        except UnknownJob as exc:
            raise ScheduleOverrideError(f"{ENV_VAR}: {exc}") from None
        if cron is None or (isinstance(cron, str) and cron.strip().lower() == OFF):
            checked[name] = None
            continue
        try:  # a slot runs the job without arguments (its `validate` runs at each slot)
            check_job_arguments(name, {}, validate=False)
        except BadJobArguments as exc:
            raise ScheduleOverrideError(f"{ENV_VAR}: cannot schedule {exc}") from None
        if not isinstance(cron, str) or not croniter.is_valid(cron.strip()):
            raise ScheduleOverrideError(
                f"{ENV_VAR}: {name}: {cron!r} is not a cron expression (e.g. '0 4 * * *' or 'off')"
            )
        checked[name] = " ".join(cron.split())
    return checked


def effective_cron(spec: JobSpec, overrides: Mapping[str, str | None]) -> str | None:
    """The cron the job runs on: the override (from `schedule_overrides()`) when one is
    set, else the code's."""
    return overrides[spec.name] if spec.name in overrides else spec.cron
