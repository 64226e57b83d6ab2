"""Who may start a job by hand: `jobs.run_job` plus the permissions the job declares.

Every way to start a job from the admin ("Run now", "Retry", an app's "run this job"
action) asks `can_run_job`, so retrying a run never lets a user do what the job's own
action would refuse them (a run-only user cannot replay a draw that needs the change
permission on exchanges).
"""

from collections.abc import Mapping
from typing import Any

from jobs.exceptions import UnknownJob
from jobs.registry import get_job

RUN_PERMISSION = "jobs.run_job"


def required_permissions(job_name: str, kwargs: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """`jobs.run_job` and every permission the job declares (for these arguments)."""
    spec = get_job(job_name)
    return (RUN_PERMISSION, *spec.permissions_for(dict(kwargs or {})))


def can_run_job(user, job_name: str, kwargs: Mapping[str, Any] | None = None) -> bool:
    """True when `user` may run (or retry) `job_name` with `kwargs`; False for unknown jobs."""
    if user is None or not getattr(user, "is_active", False):
        return False
    try:
        needed = required_permissions(job_name, kwargs)
    except UnknownJob:
        return False
    return user.has_perms(needed)


def missing_permissions(
    user, job_name: str, kwargs: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """The permissions `user` lacks to run `job_name` (for a message naming them)."""
    return tuple(p for p in required_permissions(job_name, kwargs) if not user.has_perm(p))
