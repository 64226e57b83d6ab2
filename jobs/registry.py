"""The job registry: every job is declared once, in code, with its schedule and policies."""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from jobs.exceptions import UnknownJob
from jobs.runs.retry import NO_RETRY, RetryPolicy, as_retry_policy

CLUSTERS = ("default", "notifications", "apply", "subscriptions")
#: Where a job's alerts go (jobs.outbox.alerts); JOBS_ALERT_CHANNELS overrides per job.
ALERT_CHANNELS = ("off", "email", "webhook", "both")

JobFunc = Callable[..., dict[str, Any] | None]


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A registered job: `@job(name, **fields)` declares one, checked as it is declared.
    What each field means for a run: docs/jobs-core.md "Declare a job"."""

    #: Dotted name, `app.verb_noun`, also the django-q2 Schedule name.
    name: str
    #: The function doing the work; keyword arguments only; returns the result dict.
    func: JobFunc
    #: Cron expression in UTC, or None for on-demand jobs.
    cron: str | None = None
    #: django-q2 cluster (queue) the job runs on.
    cluster: str = "default"
    #: Single flight: a second concurrent run records `skipped`.
    single_flight: bool = True
    #: Lock key from the job's kwargs (e.g. per collection); default: `job:<name>`.
    lock_key: Callable[[dict[str, Any]], str] | None = None
    retry: RetryPolicy = NO_RETRY
    #: Hard time limit for one run (django-q2 kills the worker past it).
    timeout_seconds: int = 1800
    #: Past it the job stops at its next checkpoint, `timed out`; None: 5/6 of the hard limit.
    soft_timeout_seconds: int | None = None
    #: A cron slot later than JOBS_MISFIRE_GRACE_SECONDS runs late, once, not `missed`.
    run_late_once: bool = False
    description: str = ""
    #: Permissions needed to start the job by hand, besides `jobs.run_job`.
    permissions: tuple[str, ...] = ()
    #: Extra permissions needed when an argument is truthy (e.g. force_reimport).
    argument_permissions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Checks arguments whose types passed, before a run exists; raises BadJobArguments.
    validate: Callable[[dict[str, Any]], None] | None = None
    #: Where its alerts go: "off", "email", "webhook" or "both" (JOBS_ALERT_CHANNELS wins).
    alerts: str = "both"

    def __post_init__(self) -> None:
        bad = f"job {self.name}:"
        if self.cluster not in CLUSTERS:
            raise ValueError(f"{bad} unknown cluster {self.cluster!r}, expected one of {CLUSTERS}")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"{bad} invalid cron expression {self.cron!r}")
        soft = self.soft_timeout_seconds
        if soft is not None and not 0 < soft < self.timeout_seconds:
            raise ValueError(f"{bad} soft_timeout_seconds must be between 0 and timeout_seconds")
        if self.alerts not in ALERT_CHANNELS:
            raise ValueError(f"{bad} alerts must be one of {ALERT_CHANNELS}, not {self.alerts!r}")
        params = inspect.signature(self.func).parameters.values()
        if self.cron is not None and (needed := [p.name for p in params if p.default is p.empty]):
            raise ValueError(f"{bad} a scheduled job cannot need arguments ({', '.join(needed)})")

    def permissions_for(self, kwargs: dict[str, Any] | None = None) -> tuple[str, ...]:
        """Every permission a user needs to start this job with `kwargs` by hand."""
        extra = [
            perm
            for argument, perms in self.argument_permissions
            if (kwargs or {}).get(argument)
            for perm in perms
        ]
        return tuple(dict.fromkeys([*self.permissions, *extra]))

    @property
    def soft_limit_seconds(self) -> int:
        """The soft time limit in effect (the declared one, or 5/6 of the hard limit)."""
        return self.soft_timeout_seconds or max(1, self.timeout_seconds * 5 // 6)

    def parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.func).parameters)


_registry: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    retry: RetryPolicy | bool | int | None = False,
    permissions: tuple[str, ...] = (),
    argument_permissions: dict[str, tuple[str, ...]] | None = None,
    **fields: Any,
) -> Callable[[JobFunc], JobFunc]:
    """Register `func` as the job `name` with JobSpec's `fields`; returns `func` unchanged."""

    def decorator(func: JobFunc) -> JobFunc:
        existing = _registry.get(name)
        if existing and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"job {name} is registered twice")
        _registry[name] = JobSpec(
            name=name,
            func=func,
            retry=as_retry_policy(retry),
            description=inspect.cleandoc(func.__doc__ or "").split("\n\n")[0],
            permissions=tuple(permissions),
            argument_permissions=tuple((argument_permissions or {}).items()),
            **fields,
        )
        return func

    return decorator


def get_job(name: str) -> JobSpec:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownJob(f"unknown job {name!r} (known: {known})") from None


def all_jobs() -> list[JobSpec]:
    return [_registry[name] for name in sorted(_registry)]
