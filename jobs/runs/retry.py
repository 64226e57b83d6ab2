"""Retry policy: capped exponential backoff with full jitter, as a small value object."""

import random
from collections.abc import Callable
from dataclasses import dataclass

from jobs.exceptions import PermanentJobError, SoftTimeLimitExceeded


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """When and how long to wait before re-running a failed job: after attempt n (1-based),
    ``uniform(0, min(cap, base * 2 ** (n - 1)))`` seconds, unless n >= max_attempts or the
    error is permanent. The default is the storefront source's notification policy."""

    #: Total runs including the first one; 1 means never retry.
    max_attempts: int = 4
    #: Ceiling of the first wait, doubled per attempt.
    base_seconds: float = 1.0
    #: No wait is longer than this.
    cap_seconds: float = 600.0
    #: Only these exception types are retried.
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    #: These are never retried, even when they match retry_on.
    never_retry: tuple[type[BaseException], ...] = (PermanentJobError,)
    #: Jitter off gives the exact ceilings (used by tests and docs).
    jitter: bool = True

    def will_retry(self, *, attempt: int, error: BaseException) -> bool:
        """Whether the runner will queue another attempt after `attempt` failed with `error`."""
        return self.delay_for(attempt=attempt, error=error, rng=lambda low, high: high) is not None

    def is_permanent(self, error: BaseException) -> bool:
        """No attempt of this policy would retry `error` (a PermanentJobError, say), whatever
        the attempt: recorded `permanent`, not `retries_exhausted`."""
        return isinstance(error, self.never_retry) or not isinstance(error, self.retry_on)

    def delay_for(
        self,
        *,
        attempt: int,
        error: BaseException,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to stop."""
        if attempt >= self.max_attempts or self.is_permanent(error):
            return None
        if isinstance(error, SoftTimeLimitExceeded):
            return None  # recorded `timed out`, never retried: a chain releases its lock
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
        return rng(0, ceiling) if self.jitter else ceiling


NO_RETRY = RetryPolicy(max_attempts=1)
DEFAULT_RETRY = RetryPolicy()


def as_retry_policy(value: "RetryPolicy | bool | int | None") -> RetryPolicy:
    """Shorthand: True -> default policy, False/None -> never, int n -> n retries."""
    if isinstance(value, RetryPolicy):
        return value
    if value is True:
        return DEFAULT_RETRY
    if value is None or value is False:
        return NO_RETRY
    if isinstance(value, int):
        return RetryPolicy(max_attempts=value + 1)
    raise TypeError(f"cannot make a retry policy from {value!r}")
