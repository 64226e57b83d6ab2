"""The job registry: every job is declared once, in code, with its schedule and policies."""

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.retry import RetryPolicy, as_retry_policy

CLUSTERS = ("default", "notifications", "apply", "subscriptions")

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
    #: Lease length; kept alive by the heartbeat while the run is alive.
    lease_seconds: int = 120
    #: Lock key from the job's kwargs (e.g. per collection); default: the job name.
    lock_key: Callable[[dict[str, Any]], str] | None = None
    retry: RetryPolicy = field(default_factory=lambda: as_retry_policy(False))
    #: Hard time limit for one run (django-q2 kills the worker past it).
    timeout_seconds: int = 1800
    description: str = ""

    def lock_key_for(self, kwargs: dict[str, Any]) -> str:
        return self.lock_key(kwargs) if self.lock_key else f"job:{self.name}"

    def parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.func).parameters)

    def check_arguments(self, kwargs: dict[str, Any]) -> None:
        """Raise BadJobArguments when kwargs would not bind, or a value has the wrong type.

        Checked before anything is written, so `run_job NAME program_id=abc` exits with
        one line instead of recording a failed run and queueing a retry.
        """
        try:
            inspect.signature(self.func).bind(**kwargs)
        except TypeError as exc:
            raise BadJobArguments(f"{self.name}: {exc}") from exc
        hints = typing.get_type_hints(self.func)
        for key, value in kwargs.items():
            expected = hints.get(key)
            if expected is not None and not _value_matches(value, expected):
                raise BadJobArguments(
                    f"{self.name}: argument {key}={value!r} is not {_type_name(expected)}"
                )


def _value_matches(value: Any, expected: Any) -> bool:
    """isinstance for the JSON-able annotations jobs use (int, str, X | None, list[int]...)."""
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_value_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin is not None:
        expected = origin
    if not isinstance(expected, type):
        return True  # an annotation we cannot check (a Literal, a TypeVar...)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int and isinstance(value, bool):
        return False
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")


_registry: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    cron: str | None = None,
    cluster: str = "default",
    single_flight: bool = True,
    lease_seconds: int = 120,
    lock_key: Callable[[dict[str, Any]], str] | None = None,
    retry: RetryPolicy | bool | int | None = False,
    timeout_seconds: int = 1800,
) -> Callable[[JobFunc], JobFunc]:
    """Register `func` as the job `name`; the function itself is returned unchanged."""
    if cluster not in CLUSTERS:
        raise ValueError(f"job {name}: unknown cluster {cluster!r}, expected one of {CLUSTERS}")
    if cron is not None and not croniter.is_valid(cron):
        raise ValueError(f"job {name}: invalid cron expression {cron!r}")

    def decorator(func: JobFunc) -> JobFunc:
        existing = _registry.get(name)
        if existing and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"job {name} is registered twice")
        _registry[name] = JobSpec(
            name=name,
            func=func,
            cron=cron,
            cluster=cluster,
            single_flight=single_flight,
            lease_seconds=lease_seconds,
            lock_key=lock_key,
            retry=as_retry_policy(retry),
            timeout_seconds=timeout_seconds,
            description=inspect.cleandoc(func.__doc__ or "").split("\n\n")[0],
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
