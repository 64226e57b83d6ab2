"""Leases: one owner at a time, owner-only release; a run's lease lives exactly as long as
the run (jobs.runs.lifecycle's rule), a lease of no run until its expiry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, Lease
from jobs.runs import lifecycle
from jobs.runs.locks import (
    acquire_lease,
    bound_to_run,
    hand_over_leases,
    lease_row,
    release_lease,
    release_run_leases,
)
from tests.live_run import LiveRun, lease_holder

pytestmark = pytest.mark.django_db


def a_run(**fields) -> JobRun:
    return JobRun.objects.create(job="devkit.demo_job", trigger="command", **fields)


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
    lease = acquire_lease(key="k", owner="b", lease_seconds=5, now=later)
    assert lease is not None and (lease.taken_from, lease.taken_reason) == ("a", "lease expired")
    # the old owner no longer holds it and cannot release it
    assert release_lease(key="k", owner="a") is False
    assert lease_holder("k")[0] == "b"


def test_release__only_owner_releases():
    acquire_lease(key="k", owner="a", lease_seconds=60)
    assert release_lease(key="k", owner="b") is False
    assert release_lease(key="k", owner="a") is True
    assert lease_holder("k") is None


@pytest.mark.django_db(transaction=True)
def test_run_lease__held_while_the_run_lives_and_taken_over_at_once_when_its_session_ends():
    run = a_run(status=JobRun.Status.QUEUED)
    with LiveRun(run) as live:
        assert acquire_lease(key="k", owner=f"run:{run.pk}", run_id=run.pk) is not None
        assert acquire_lease(key="k", owner="b", run_id=None, lease_seconds=60) is None
        assert lifecycle.lease_held("k") is True
        live.kill()

    # No expiry to wait for: the session ended, so the run is dead and its lease free.
    lease = acquire_lease(key="k", owner="b", lease_seconds=60)

    assert lease is not None
    assert (lease.taken_from, lease.taken_reason) == (f"run:{run.pk}", "database session ended")
    assert lease.taken_run == run.pk


def test_run_lease__held_while_its_run_is_queued_free_once_the_run_ended():
    run = a_run(status=JobRun.Status.QUEUED)
    acquire_lease(key="k", owner="chain", run_id=run.pk)

    assert acquire_lease(key="k", owner="b", lease_seconds=60) is None

    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.SUCCEEDED)
    lease = acquire_lease(key="k", owner="b", lease_seconds=60)
    assert lease is not None and lease.taken_reason == "run ended"


def test_hand_over__the_next_run_holds_the_lease_while_it_waits():
    hop = a_run(status=JobRun.Status.SUCCEEDED)
    next_hop = a_run(status=JobRun.Status.QUEUED)
    acquire_lease(key="k", owner="chain", run_id=hop.pk)
    assert lifecycle.lease_held("k") is False  # the hop ended

    hand_over_leases(from_run=hop.pk, to_run=next_hop.pk)

    assert lifecycle.lease_held("k") is True
    assert acquire_lease(key="k", owner="other", lease_seconds=60) is None


def test_hand_over__the_next_run_takes_the_lease_as_its_own_no_takeover():
    hop = a_run(status=JobRun.Status.SUCCEEDED)
    next_hop = a_run(status=JobRun.Status.RUNNING)
    acquire_lease(key="k", owner=f"run:{hop.pk}", run_id=hop.pk)
    hand_over_leases(from_run=hop.pk, to_run=next_hop.pk)

    lease = acquire_lease(key="k", owner=f"run:{next_hop.pk}", run_id=next_hop.pk)

    assert lease is not None and lease.kept is True
    assert (lease.taken_from, lease.taken_reason, lease.taken_run) == ("", "", None)
    row = lease_row("k")
    assert (row.owner, row.run_id) == (f"run:{next_hop.pk}", next_hop.pk)
    assert bound_to_run(key="k", run_id=next_hop.pk) and not bound_to_run(key="k", run_id=hop.pk)


def test_release_run_leases__drops_the_runs_own_a_lease_handed_on_stays():
    hop, other, next_hop = (a_run(status=JobRun.Status.RUNNING) for _ in range(3))
    acquire_lease(key="handed", owner=f"run:{hop.pk}", run_id=hop.pk)
    acquire_lease(key="own", owner=f"run:{hop.pk}", run_id=hop.pk)
    acquire_lease(key="another", owner=f"run:{other.pk}", run_id=other.pk)
    Lease.objects.filter(key="handed").update(run_id=next_hop.pk)

    release_run_leases(hop.pk)

    assert set(Lease.objects.values_list("key", flat=True)) == {"handed", "another"}
    assert lease_row("handed").run_id == next_hop.pk


@pytest.mark.django_db(transaction=True)
def test_claim__a_live_run_is_not_claimed_twice_and_a_dead_one_is_claimed_again():
    run = a_run(status=JobRun.Status.QUEUED)
    with LiveRun(run):
        assert lifecycle.claim(run.pk) is None  # a second delivery while it runs
    # Its worker died mid-run: the run still says running, and a redelivery takes it.
    claimed = lifecycle.claim(run.pk)
    try:
        assert claimed is not None and claimed.status == JobRun.Status.RUNNING
        assert lifecycle.lost_runs() == []
    finally:
        lifecycle.release(run.pk)
    assert [lost.pk for lost in lifecycle.lost_runs()] == [run.pk]
