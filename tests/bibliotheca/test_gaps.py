"""A day the partner always fails on becomes a gap: the chain reaches today, the gap is
read again by the next nights' chains until it succeeds (or is dismissed)."""

from datetime import UTC, datetime, timedelta

import pytest

from bibliotheca.models import Gap, LicensePool, Timestamp
from bibliotheca.services.purchase_chain import purchase_lock_key
from devkit.bibliotheca_simulator import Fault
from jobs.models import JobRun, Lease
from tests.bibliotheca.conftest import CHAIN, NOW, RECORDS, drain, start_chain

pytestmark = [pytest.mark.django_db(transaction=True)]

DAY_2 = datetime(2014, 1, 2, tzinfo=UTC)
POISON = "startdate=2014-01-02T00%3A00%3A00"


def chain_runs() -> list[JobRun]:
    return list(JobRun.objects.filter(job=CHAIN).order_by("id"))


def poison_day_2(simulator) -> None:
    """Every request for day 2's window answers 503, however often it is asked."""
    simulator.state.faults.append(Fault(kind="5xx", endpoint="marc", match=POISON, times=1000))


def pools(collection) -> int:
    return LicensePool.objects.filter(collection=collection).count()


def test_poison_day__becomes_a_gap_after_the_retries_and_the_chain_reaches_today(
    collection, simulator, frozen_clock
):
    poison_day_2(simulator)
    start_chain(collection, time_budget_seconds=60)

    drain(include_apply=False)

    runs = chain_runs()
    assert [(r.status, r.attempt) for r in runs[:5]] == [("failed", n) for n in range(1, 5)] + [
        ("succeeded", 5)
    ]
    assert runs[4].result["gap"] == DAY_2.isoformat() and runs[-1].result["done"] is True
    gap = Gap.objects.get(collection=collection)
    assert (gap.day, gap.window_end, gap.status, gap.attempts) == (
        DAY_2,
        DAY_2 + timedelta(days=1),
        Gap.Status.OPEN,
        5,
    )
    assert gap.error.startswith("BadResponse: ") and "2014-01-02T00:00:00..2014-01-03" in gap.error
    assert pools(collection) == RECORDS - 120  # every day but the poison one
    ts = Timestamp.objects.get(collection=collection)
    assert ts.finish == NOW and ts.exception == "" and ts.progress["gaps"] == 1
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()


def test_gap__is_read_again_next_night_and_resolved(collection, simulator, frozen_clock):
    poison_day_2(simulator)
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    simulator.state.faults.clear()  # the partner fixed day 2

    frozen_clock.move_to(NOW + timedelta(days=1))
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    last = chain_runs()[-1].result
    assert (last["gaps_retried"], last["gaps_resolved"], last["gap_records"]) == (1, 1, 120)
    gap = Gap.objects.get(collection=collection)
    assert (gap.status, gap.attempts, gap.resolved_at) == (
        Gap.Status.RESOLVED,
        6,
        NOW + timedelta(days=1),
    )
    assert pools(collection) == RECORDS + 120  # day 2 and the new day


def test_gap_still_failing__stays_open_with_one_more_attempt(collection, simulator, frozen_clock):
    poison_day_2(simulator)
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    frozen_clock.move_to(NOW + timedelta(days=1))
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    assert chain_runs()[-1].result["done"] is True
    assert chain_runs()[-1].result["gaps_resolved"] == 0
    gap = Gap.objects.get(collection=collection)
    assert (gap.status, gap.attempts, gap.last_tried_at) == (
        Gap.Status.OPEN,
        6,
        NOW + timedelta(days=1),
    )


def test_dismissed_gap__is_not_read_again(collection, simulator, frozen_clock):
    poison_day_2(simulator)
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    Gap.objects.update(status=Gap.Status.DISMISSED)
    requests = len(simulator.state.log)

    frozen_clock.move_to(NOW + timedelta(days=1))
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    assert chain_runs()[-1].result["gaps_retried"] == 0
    assert not any(POISON in detail for _, detail in simulator.state.log[requests:])


def test_more_failing_windows_than_gaps_per_chain__stop_the_chain(
    collection, simulator, frozen_clock, settings
):
    settings.BIBLIOTHECA_GAPS_PER_CHAIN = 1
    poison_day_2(simulator)
    simulator.state.faults.append(
        Fault(kind="5xx", endpoint="marc", match="startdate=2014-01-03", times=1000)
    )
    start_chain(collection, time_budget_seconds=60)

    drain(include_apply=False)

    last = chain_runs()[-1]
    assert (last.status, last.result) == ("failed", {"retries_exhausted": True})
    assert list(Gap.objects.values_list("day", flat=True)) == [DAY_2]
    ts = Timestamp.objects.get(collection=collection)
    assert ts.finish == DAY_2 + timedelta(days=1)  # held at the second bad day
    assert "2014-01-03T00:00:00..2014-01-04" in ts.exception
