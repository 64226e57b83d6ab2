"""kill -9 a real qcluster in the middle of a large point expiration, restart, run again.

Verified: the ledger invariant (balance = sum of the card's ledger) on every card, every
due card expired exactly once (one POINTS_EXPIRED row), one `points_expired` message
per card, and the killed run recorded as lost by the run that took over its lock at once
(the lock is bound to the killed worker's database session; nothing is aged out).
"""

import time

import pytest

from devkit.waiting import wait_for_run
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job
from loyalty.models import LoyaltyCard, LoyaltyTransaction
from tests.loyalty.conftest import ledger_violations, points_expired_total
from tests.reliability.conftest import poll, say, seed_due_cards

pytestmark = pytest.mark.e2e
JOB = "loyalty.expire_points"


def expired_rows() -> int:
    return LoyaltyTransaction.objects.filter(transaction_type="points_expired").count()


def crash_and_recover(qcluster, cards: int, *, kill_after: int, timeout: float) -> None:
    started = time.monotonic()
    seed_due_cards(cards)
    expected_points = sum(LoyaltyCard.objects.values_list("points_balance", flat=True))
    say(
        f"seeded {cards:,} due cards ({expected_points:,} points) in {time.monotonic() - started:.1f} s"
    )

    (cluster,) = qcluster.start(["default"])
    first = enqueue_job(JOB, trigger="command", triggered_by="crash-test")
    done_at_kill = poll(
        lambda: (n := expired_rows()) >= kill_after and n,
        timeout=timeout,
        what=f"{kill_after} cards expired",
        every=0.02,
    )
    qcluster.kill(cluster)
    at_kill = expired_rows()
    say(
        f"kill -9 cluster pid {cluster.pid} (run {first.pk}) with {at_kill:,}/{cards:,} cards "
        f"expired (poll saw {done_at_kill:,})"
    )
    assert 0 < at_kill < cards, "the kill must land in the middle of the run"
    assert JobRun.objects.get(pk=first.pk).status == "running"
    assert ledger_violations() == [], "a committed chunk must leave the ledger right"

    # No aging out: the killed worker's lease died with its database session, so the
    # restarted cluster's run takes the lock over at once, not after the lease's 600 s.
    qcluster.start(["default"])
    second = enqueue_job(JOB, trigger="command", triggered_by="crash-test")
    second = wait_for_run(second.pk, timeout_seconds=timeout)
    first.refresh_from_db()

    assert second.status == "succeeded", second.error
    assert second.result["cards_processed"] == cards - at_kill
    assert first.status == "failed" and first.error.startswith("worker lost")
    per_card = LoyaltyTransaction.objects.filter(transaction_type="points_expired")
    assert per_card.count() == cards
    assert per_card.values("card_id").distinct().count() == cards
    points = points_expired_total()
    assert points == expected_points
    assert not LoyaltyCard.objects.filter(points_balance__gt=0).exists()
    violations = ledger_violations()
    assert violations == []
    messages = Notification.objects.filter(template__endswith="points_expired")
    assert messages.count() == cards == messages.values("dedup_key").distinct().count()
    say(
        f"restart: run {second.pk} expired the remaining {second.result['cards_processed']:,} "
        f"in {second.duration_seconds:.1f} s; verified: ledger invariant on all {cards:,} cards, "
        f"{cards:,} POINTS_EXPIRED rows on {cards:,} distinct cards (none twice), "
        f"{points:,} points expired = seeded, {messages.count():,} messages, "
        f"killed run {first.pk} recorded '{first.error[:40]}...'; "
        f"total {time.monotonic() - started:.1f} s"
    )


def test_kill_9_mid_expiration__20k_cards(qcluster, quiet_scheduler):
    crash_and_recover(qcluster, 20_000, kill_after=4_000, timeout=120)


@pytest.mark.slow
def test_kill_9_mid_expiration__200k_cards(qcluster, quiet_scheduler):
    """The same at production scale. Slow (about 35 s): `make test-slow`."""
    crash_and_recover(qcluster, 200_000, kill_after=50_000, timeout=600)
