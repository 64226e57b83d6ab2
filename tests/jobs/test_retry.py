"""RetryPolicy: capped exponential backoff with full jitter; permanent errors stop."""

from jobs.exceptions import PermanentJobError
from jobs.runs.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy, as_retry_policy


def test_default_policy__is_seed_002_notification_policy():
    assert (DEFAULT_RETRY.max_attempts, DEFAULT_RETRY.cap_seconds) == (4, 600)
    assert DEFAULT_RETRY.jitter is True


def test_delay__doubles_then_caps_without_jitter():
    policy = RetryPolicy(max_attempts=10, base_seconds=60, cap_seconds=300, jitter=False)
    delays = [policy.delay_for(attempt=n, error=RuntimeError()) for n in range(1, 6)]
    assert delays == [60, 120, 240, 300, 300]


def test_delay__full_jitter_draws_between_zero_and_ceiling():
    seen = []
    policy = RetryPolicy(max_attempts=5, base_seconds=10)
    policy.delay_for(
        attempt=3, error=RuntimeError(), rng=lambda lo, hi: seen.append((lo, hi)) or hi
    )
    assert seen == [(0, 40)]


def test_delay__stops_after_max_attempts_and_on_permanent_errors():
    assert DEFAULT_RETRY.delay_for(attempt=4, error=RuntimeError()) is None
    assert DEFAULT_RETRY.delay_for(attempt=1, error=PermanentJobError("bad key")) is None
    only_io = RetryPolicy(retry_on=(OSError,))
    assert only_io.delay_for(attempt=1, error=ValueError()) is None


def test_shorthand():
    assert as_retry_policy(True) is DEFAULT_RETRY
    assert as_retry_policy(False) is NO_RETRY
    assert as_retry_policy(2).max_attempts == 3
