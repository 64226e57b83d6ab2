"""Lease locks: one owner at a time, owner-only extend/release, expiry frees the key."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.locks import acquire_lease, extend_lease, lease_holder, release_lease

pytestmark = pytest.mark.django_db


def test_acquire__second_owner_is_refused_while_lease_is_live():
    assert acquire_lease(key="k", owner="a", lease_seconds=60) is not None
    assert acquire_lease(key="k", owner="b", lease_seconds=60) is None
    assert lease_holder("k")[0] == "a"


def test_acquire__same_owner_is_reentrant_and_extends():
    first = acquire_lease(key="k", owner="a", lease_seconds=10)
    again = acquire_lease(key="k", owner="a", lease_seconds=60)
    assert again is not None and again.expires_at > first.expires_at


def test_acquire__expired_lease_is_taken_over():
    now = timezone.now()
    acquire_lease(key="k", owner="a", lease_seconds=5, now=now)
    later = now + timedelta(seconds=6)
    assert acquire_lease(key="k", owner="b", lease_seconds=5, now=later) is not None
    assert lease_holder("k")[0] == "b"
    # the old owner can no longer extend or release it
    assert extend_lease(key="k", owner="a", lease_seconds=60) is False
    assert release_lease(key="k", owner="a") is False
    assert lease_holder("k")[0] == "b"


def test_release__only_owner_releases():
    acquire_lease(key="k", owner="a", lease_seconds=60)
    assert release_lease(key="k", owner="b") is False
    assert release_lease(key="k", owner="a") is True
    assert lease_holder("k") is None


def acquire_in_a_session_that_ends(**kwargs) -> None:
    """Take a lease from another database session, then end that session (as kill -9 does:
    the process's connection goes away; here the thread closes it)."""
    from django.db import connection

    def hold() -> None:
        try:
            assert acquire_lease(**kwargs) is not None
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()


def poll(probe, *, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.05)
    return None


@pytest.mark.django_db(transaction=True)
def test_acquire__lease_whose_session_ended_is_taken_over_at_once():
    acquire_in_a_session_that_ends(key="k", owner="dead", lease_seconds=600, bind_session=True)

    # The server ends the session within moments: no waiting for the 600 s expiry.
    lease = poll(lambda: acquire_lease(key="k", owner="b", lease_seconds=60), timeout=5)

    assert lease is not None, "the lease of an ended session is still refused"
    assert (lease.taken_from, lease.taken_reason) == ("dead", "database session ended")
    assert lease_holder("k")[0] == "b"
    assert extend_lease(key="k", owner="dead", lease_seconds=60) is False


@pytest.mark.django_db(transaction=True)
def test_acquire__lease_of_a_live_session_is_refused_and_unbound_lease_waits_for_expiry():
    from django.db import connection

    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        acquire_lease(key="live", owner="alive", lease_seconds=600, bind_session=True)
        holding.set()
        done.wait(10)
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    # A chain's lease travels between sessions: it is not bound, only its expiry frees it.
    acquire_in_a_session_that_ends(key="chain", owner="hop-1", lease_seconds=600)
    try:
        assert acquire_lease(key="live", owner="b", lease_seconds=60) is None
        assert (
            poll(lambda: acquire_lease(key="chain", owner="b", lease_seconds=60), timeout=1) is None
        )
    finally:
        done.set()
        thread.join()
    assert lease_holder("chain")[0] == "hop-1"
