"""Who may start a job by hand ("Run now", "Retry", an app's action): `jobs.run_job` plus
the permissions the job declares, so a retry never does what the job's own action refuses."""

from collections.abc import Mapping
from typing import Any

from jobs.exceptions import UnknownJob
from jobs.registry import get_job

RUN_PERMISSION = "jobs.run_job"


def required_permissions(job_name: str, kwargs: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """`jobs.run_job` and every permission the job declares (for these arguments)."""
    return (RUN_PERMISSION, *get_job(job_name).permissions_for(dict(kwargs or {})))


def can_run_job(user, job_name: str, kwargs: Mapping[str, Any] | None = None) -> bool:
    """True when `user` may run (or retry) `job_name` with `kwargs`; False for unknown jobs
    and (Django's `has_perms`) inactive users."""
    try:
        return user.has_perms(required_permissions(job_name, kwargs))
    except UnknownJob:
        return False


def missing_permissions(
    user, job_name: str, kwargs: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """The permissions `user` lacks to run `job_name` (for a message naming them)."""
    return tuple(p for p in required_permissions(job_name, kwargs) if not user.has_perm(p))
