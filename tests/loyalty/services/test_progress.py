"""Progress on the run page: wallet sync every 25 cards, expiration after every committed chunk.

Each report replaces the stored progress, so every one carries running totals; the
sequence is watched in-process (jobs.runs.progress.watching_progress), the last one is read
back from the JobRun row.
"""

from typing import Any

import pytest

from jobs.models import JobRun
from jobs.runner import run_job_now
from loyalty.services.expiration import expire_points

pytestmark = pytest.mark.django_db


def test_wallet_sync__reports_every_25_cards_with_failures_so_far_and_at_the_end(
    frozen_now, program_factory, card_factory, fake_wallet, reports
):
    program = program_factory()
    cards = [card_factory(program, inactive_days=0.01, google=f"g{i}") for i in range(60)]
    for card in cards[1:3]:  # refused (400): no backoff to wait for
        fake_wallet.google.faults.rejected_ids.add(card.google_object_id)

    run = run_job_now("loyalty.sync_wallet_passes")

    assert [(r["done"], r["total"], r["failed"]) for r in reports] == [
        (0, 60, 0),
        (25, 60, 2),
        (50, 60, 2),
        (60, 60, 2),
    ]
    assert {r["unit"] for r in reports} == {"cards"}
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.progress == {"done": 60, "total": 60, "unit": "cards", "failed": 2}


@pytest.fixture
def two_programs(program_factory, card_factory, frozen_now):
    """Program 1: 5 cards past expiration, 3 to warn. Program 2: 3 past expiration."""
    first, second = program_factory(expiration_days=365), program_factory(expiration_days=90)
    for i in range(5):
        card_factory(first, points=10 + i, inactive_days=400 + i, warned_days_ago=20)
    for i in range(3):
        card_factory(first, points=7, inactive_days=355 + i)
    for i in range(3):
        card_factory(second, points=3, inactive_days=100 + i, warned_days_ago=20)
    card_factory(second, points=3, inactive_days=1)  # not due: never counted
    return first, second


def expected(done: int, program: int, warned: int, expired: int) -> dict[str, Any]:
    return {
        "done": done,
        "total": None,
        "unit": "cards",
        "program": program,
        "programs": 2,
        "warned": warned,
        "expired": expired,
    }


def test_expiration__reports_after_every_committed_chunk_with_running_totals(
    two_programs, reports, monkeypatch
):
    # The task calls expire_points with its default chunk size: make chunks of 2 cards.
    monkeypatch.setitem(expire_points.__kwdefaults__, "chunk_size", 2)

    run = run_job_now("loyalty.expire_points")

    assert reports == [
        expected(0, 1, 0, 0),  # program 1 starts
        expected(2, 1, 2, 0),  # warnings, chunk by chunk
        expected(3, 1, 3, 0),
        expected(5, 1, 3, 2),  # expirations
        expected(7, 1, 3, 4),
        expected(8, 1, 3, 5),
        expected(0, 2, 3, 5),  # program 2: done restarts, the run's totals go on
        expected(2, 2, 3, 7),
        expected(3, 2, 3, 8),
    ]
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED and run.progress == expected(3, 2, 3, 8)
    assert (run.result["cards_processed"], run.result["warnings_sent"]) == (8, 3)


def test_expiration__a_chunk_that_cannot_notify_fails_the_run_after_the_committed_ones(
    two_programs, reports, template_override, monkeypatch
):
    monkeypatch.setitem(expire_points.__kwdefaults__, "chunk_size", 2)
    template_override("loyalty/notifications/points_expired.subject.txt", "{% broken_tag %}")

    run = run_job_now("loyalty.expire_points")

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED and "broken_tag" in run.error
    # Warnings committed chunk by chunk; the first expiration chunk rolled back.
    assert reports[-1] == expected(3, 1, 3, 0)
    assert run.progress == expected(3, 1, 3, 0)


def test_expiration_dry_run__reports_what_a_run_would_do_per_program(two_programs, reports):
    run = run_job_now("loyalty.expire_points", kwargs={"dry_run": True})

    assert reports == [
        expected(0, 1, 0, 0),
        expected(8, 1, 3, 5),
        expected(0, 2, 3, 5),
        expected(3, 2, 3, 8),
    ]
    run.refresh_from_db()
    assert run.progress == expected(3, 2, 3, 8) and run.result["dry_run"] is True


def test_expiration_outside_a_job__reports_nothing_and_works(two_programs, reports):
    result = expire_points(chunk_size=2)

    assert result["cards_processed"] == 8 and reports == []
    assert not JobRun.objects.exists()
