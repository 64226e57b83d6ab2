"""The job registry: every job is declared once, in code, with its schedule and policies."""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from jobs.exceptions import UnknownJob
from jobs.runs.retry import RetryPolicy, as_retry_policy

CLUSTERS = ("default", "notifications", "apply", "subscriptions")
#: Where a job's alerts go (jobs.outbox.alerts); JOBS_ALERT_CHANNELS overrides per job.
ALERT_CHANNELS = ("off", "email", "webhook", "both")

JobFunc = Callable[..., dict[str, Any] | None]


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A registered job."""

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
    #: Lock key from the job's kwargs (e.g. per collection); default: the job name.
    lock_key: Callable[[dict[str, Any]], str] | None = None
    retry: RetryPolicy = field(default_factory=lambda: as_retry_policy(False))
    #: Hard time limit for one run (django-q2 kills the worker past it).
    timeout_seconds: int = 1800
    #: Soft time limit: past it the job is stopped at its next safe point (a progress
    #: report or checkpoint) and recorded `timed out`; None: 5/6 of the hard limit
    #: (1500 s of the default 1800 s).
    soft_timeout_seconds: int | None = None
    #: A cron slot that starts more than JOBS_MISFIRE_GRACE_SECONDS (300) late is
    #: recorded `missed` and not run, unless this is True: then it runs late, once.
    run_late_once: bool = False
    description: str = ""
    #: Django permissions needed to run or retry the job by hand, besides `jobs.run_job`
    #: (the same ones as the app's own admin action for it; see jobs.admin.permissions).
    permissions: tuple[str, ...] = ()
    #: Extra permissions needed when an argument is truthy (e.g. force_reimport).
    argument_permissions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Checks the job's arguments beyond their types and bounds (e.g. that the exchange
    #: exists and can be matched); raises BadJobArguments. Called before a run exists
    #: (jobs.arguments.check_job_arguments), with values whose types already passed.
    validate: Callable[[dict[str, Any]], None] | None = None
    #: Where its alerts go: "off", "email", "webhook" or "both" (JOBS_ALERT_CHANNELS wins).
    alerts: str = "both"

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
        if self.soft_timeout_seconds is not None:
            return self.soft_timeout_seconds
        return max(1, self.timeout_seconds * 5 // 6)

    def lock_key_for(self, kwargs: dict[str, Any]) -> str:
        return self.lock_key(kwargs) if self.lock_key else f"job:{self.name}"

    def parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.func).parameters)

    def required_arguments(self) -> list[str]:
        """The parameters without a default: a job with any cannot run on a schedule."""
        return [p.name for p in self.parameters().values() if p.default is p.empty]


_registry: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    cron: str | None = None,
    cluster: str = "default",
    single_flight: bool = True,
    lock_key: Callable[[dict[str, Any]], str] | None = None,
    retry: RetryPolicy | bool | int | None = False,
    timeout_seconds: int = 1800,
    permissions: tuple[str, ...] = (),
    argument_permissions: dict[str, tuple[str, ...]] | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
    soft_timeout_seconds: int | None = None,
    run_late_once: bool = False,
    alerts: str = "both",
) -> Callable[[JobFunc], JobFunc]:
    """Register `func` as the job `name`; the function itself is returned unchanged."""
    if cluster not in CLUSTERS:
        raise ValueError(f"job {name}: unknown cluster {cluster!r}, expected one of {CLUSTERS}")
    if cron is not None and not croniter.is_valid(cron):
        raise ValueError(f"job {name}: invalid cron expression {cron!r}")
    if soft_timeout_seconds is not None and not 0 < soft_timeout_seconds < timeout_seconds:
        raise ValueError(f"job {name}: soft_timeout_seconds must be between 0 and timeout_seconds")
    if alerts not in ALERT_CHANNELS:
        raise ValueError(f"job {name}: alerts must be one of {ALERT_CHANNELS}, not {alerts!r}")

    def decorator(func: JobFunc) -> JobFunc:
        existing = _registry.get(name)
        if existing and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"job {name} is registered twice")
        spec = JobSpec(
            name=name,
            func=func,
            cron=cron,
            cluster=cluster,
            single_flight=single_flight,
            lock_key=lock_key,
            retry=as_retry_policy(retry),
            timeout_seconds=timeout_seconds,
            soft_timeout_seconds=soft_timeout_seconds,
            run_late_once=run_late_once,
            description=inspect.cleandoc(func.__doc__ or "").split("\n\n")[0],
            permissions=tuple(permissions),
            argument_permissions=tuple((argument_permissions or {}).items()),
            validate=validate,
            alerts=alerts,
        )
        if cron is not None and spec.required_arguments():
            needed = ", ".join(spec.required_arguments())
            raise ValueError(f"job {name}: a scheduled job cannot need arguments ({needed})")
        _registry[name] = spec
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
