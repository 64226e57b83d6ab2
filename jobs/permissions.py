"""Who may run a job: the one check behind every "run this job" button and admin action."""

from jobs.exceptions import UnknownJob
from jobs.registry import get_job

#: Needed to run, retry or queue any job from the admin.
RUN_PERMISSION = "jobs.run_job"


def can_run_job(user, job_name: str) -> bool:
    """True when `user` has `jobs.run_job` and every permission the job declares.

    A job declares the permissions of what it changes (`@job(..., permissions=...)`), so
    an admin action, "Run now" and "Retry" ask the same question as the job's own admin
    page would. An unknown job may be run by nobody.
    """
    try:
        spec = get_job(job_name)
    except UnknownJob:
        return False
    return user.has_perms((RUN_PERMISSION, *spec.permissions))
