"""Health per collection: a warning naming each collection whose last chain failed, that
has open gaps or whose checkpoint has not moved for 2 nights, whatever the others did."""

from datetime import timedelta

import pytest

from bibliotheca.health import check_collections
from devkit.bibliotheca_simulator import Fault, start_simulator
from jobs.health.checks import is_healthy, run_checks, takes_traffic
from tests.bibliotheca.conftest import NOW, drain, start_chain

pytestmark = [pytest.mark.django_db(transaction=True)]


def bibliotheca_line() -> str:
    """The line staff and `jobs_health` see."""
    (check,) = [c for c in run_checks() if c.name == "bibliotheca"]
    return check.line(private=True)


def test_poison_day_in_one_collection__named_while_the_other_succeeds(
    catalogue, make_collection, simulator, frozen_clock
):
    other = start_simulator(catalogue, library_id="lib", account_id="acct", account_key="key")
    try:
        poisoned = make_collection(name="Poisoned")
        healthy = make_collection(name="Healthy", base_url=other.base_url)
        simulator.state.faults.append(
            Fault(kind="5xx", endpoint="marc", match="startdate=2014-01-02", times=1000)
        )
        start_chain(poisoned, time_budget_seconds=60)
        start_chain(healthy, time_budget_seconds=60)
        drain(include_apply=False)
    finally:
        other.stop()

    check = check_collections()
    assert (check.ok, check.warning) == (False, True)
    assert bibliotheca_line() == (
        "bibliotheca: WARN collection 'Poisoned': 1 open gap(s) from 2014-01-02 00:00"
        " (see admin Bibliotheca > Collections and Gaps; re-run, retry or dismiss there)"
    )
    assert "Healthy" not in check.detail
    assert is_healthy([check]) and takes_traffic([check])  # a warning: traffic kept


def test_last_chain_failed__named_and_its_error_kept_for_staff(collection, simulator, frozen_clock):
    simulator.state.faults.append(
        Fault(kind="http_403", endpoint="marc", match="startdate=2014-01-02")
    )
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    check = check_collections()

    # Day 1 was written; day 2 answered 403: the chain stopped, the checkpoint on day 2.
    assert check.detail.startswith(
        "collection 'Main library': last chain failed, no progress since 2014-01-02 00:00 UTC ("
    )
    assert "HTTP 403" in check.error and "HTTP 403" in check.line(private=True)
    assert check.line(private=False) == "bibliotheca: WARN"  # anonymous: the state only

    start_chain(collection, time_budget_seconds=60)  # fixed: the next chain succeeds
    drain(include_apply=False)
    assert check_collections().ok


def test_no_progress_for_two_nights__named(collection, simulator, frozen_clock):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    assert check_collections().ok

    frozen_clock.move_to(NOW + timedelta(hours=47))
    assert check_collections().ok
    frozen_clock.move_to(NOW + timedelta(hours=49))
    assert check_collections().detail.startswith(
        "collection 'Main library': no progress since 2014-01-04 12:00 UTC ("
    )


def test_disabled_collection__is_not_checked(collection, simulator, frozen_clock):
    simulator.state.faults.append(Fault(kind="http_403", endpoint="marc"))
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    collection.enabled = False
    collection.save()

    assert check_collections().ok
