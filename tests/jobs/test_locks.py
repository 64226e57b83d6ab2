"""Lease locks: one owner at a time, owner-only extend/release, expiry frees the key."""

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
