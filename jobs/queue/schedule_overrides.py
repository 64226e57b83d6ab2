"""JOBS_SCHEDULES: an operator sets or changes a job's cron (or turns it "off") from
settings or the environment, without code (docs/jobs-core.md). Every entry is checked
before any is used: a bad one raises ScheduleOverrideError, one line naming it."""

from collections.abc import Mapping

from croniter import croniter

from jobs.arguments import check_job_arguments
from jobs.conf import job_entries
from jobs.exceptions import BadJobArguments, JobsError
from jobs.registry import JobSpec

ENV_VAR = "JOBS_SCHEDULES"


class ScheduleOverrideError(JobsError):
    """JOBS_SCHEDULES names an unknown job or a bad cron expression."""


def schedule_overrides() -> dict[str, str | None]:
    """Job name -> cron (None: off), every entry validated."""
    checked: dict[str, str | None] = {}
    for name, cron in job_entries(ENV_VAR, error=ScheduleOverrideError, what="cron").items():
        if cron is None or (isinstance(cron, str) and cron.strip().lower() == "off"):
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
    """The cron the job runs on: its entry in `schedule_overrides()` if any, else the code's."""
    return overrides.get(spec.name, spec.cron)
