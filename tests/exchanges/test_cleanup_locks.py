"""A cleanup's DELETE re-checks its condition on rows renewed while it waited for their lock.

Two real connections: a request renews an expired rate-limit counter and holds its row
lock; the cleanup's DELETE, in another connection, is shown waiting on that request
(pg_blocking_pids) before the request commits. The renewed counter survives.
"""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models import F

from exchanges.models import RateLimit
from exchanges.services.cleanup import cleanup_rate_limits

T = datetime(2027, 1, 31, 4, 0, tzinfo=UTC)


def in_thread(target: Callable[[], None]) -> threading.Thread:
    """Run `target` on its own connection (Django gives each thread one), closed after."""

    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def wait_until(check: Callable[[], bool], *, timeout_seconds: float = 10) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_cleanup_rate_limits__a_counter_renewed_while_the_delete_waits_survives():
    RateLimit.objects.create(key="otp:alice", count=4, expires_at=T - timedelta(minutes=1))
    RateLimit.objects.create(key="login:gone", count=1, expires_at=T - timedelta(hours=1))
    pids: dict[str, int] = {}
    renewed, release = threading.Event(), threading.Event()
    result: dict = {}

    def request() -> None:  # the 5th OTP attempt: count + 1, a new 15-minute window
        pids["request"] = backend_pid()
        with transaction.atomic():
            RateLimit.objects.filter(key="otp:alice").update(
                count=F("count") + 1, expires_at=T + timedelta(minutes=15)
            )
            renewed.set()
            release.wait(10)

    def cleanup() -> None:
        pids["cleanup"] = backend_pid()
        result.update(cleanup_rate_limits(now=T))

    request_thread = in_thread(request)
    assert renewed.wait(10)
    cleanup_thread = in_thread(cleanup)

    def cleanup_blocked_by_request() -> bool:
        if "cleanup" not in pids:
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_blocking_pids(%s)", [pids["cleanup"]])
            return pids["request"] in cursor.fetchone()[0]

    wait_until(cleanup_blocked_by_request)  # the overlap: the DELETE waits on the renewal
    release.set()
    request_thread.join(10)
    cleanup_thread.join(10)

    assert result == {"deleted": 1}
    survivor = RateLimit.objects.get()
    assert (survivor.key, survivor.count, survivor.expires_at) == (
        "otp:alice",
        5,
        T + timedelta(minutes=15),
    )
