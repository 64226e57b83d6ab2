"""kill -9 `manage.py run_job loyalty.expire_points` at about 30 %, run it again at once.

An operator's crash: the killed run's lease dies with its database session, so the
re-run, started within a second of the kill, takes the lock over at once (it does not
print "skipped: lock held by run:N" until the lease's 600 s pass), expires the rest and
records the killed run lost.

Verified: the re-run succeeds with exactly the cards the killed run had not expired, every
card expired once (one POINTS_EXPIRED row, one message), the ledger invariant on every
card, the points expired equal the points seeded, the killed run `failed` ("worker lost
... database session ended"), and the whole recovery far below the lease's 600 s.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from jobs.models import JobRun, Notification
from loyalty.models import LoyaltyCard, LoyaltyTransaction
from tests.conftest import test_database_url as database_url
from tests.loyalty.conftest import ledger_violations, points_expired_total
from tests.reliability.conftest import poll, say, seed_due_cards

pytestmark = pytest.mark.e2e
JOB = "loyalty.expire_points"
CARDS = 30_000


def run_job() -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_job", JOB],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expired_rows() -> int:
    return LoyaltyTransaction.objects.filter(transaction_type="points_expired").count()


def test_kill_9_run_job_at_30_percent__rerun_at_once_takes_over_and_finishes(
    transactional_db, quiet_scheduler
):
    started = time.monotonic()
    seed_due_cards(CARDS)
    expected_points = sum(LoyaltyCard.objects.values_list("points_balance", flat=True))

    first = run_job()
    poll(
        lambda: expired_rows() >= CARDS * 0.3 or first.poll() is not None,
        timeout=120,
        what="30 % of the cards expired",
        every=0.01,
    )
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    at_kill = expired_rows()
    killed = JobRun.objects.get(job=JOB)
    say(f"kill -9 run_job pid {first.pid} (run {killed.pk}) at {at_kill:,}/{CARDS:,} cards")
    assert 0 < at_kill < CARDS, "the kill must land in the middle of the run"
    assert killed.status == "running"

    second = run_job()  # at once: no waiting for the 600 s lease
    out, err = second.communicate(timeout=120)
    recovered_in = time.monotonic() - killed_at

    assert second.returncode == 0, (out, err)
    assert "succeeded" in out.splitlines()[-1], out
    rerun = JobRun.objects.filter(job=JOB).exclude(pk=killed.pk).get()
    killed.refresh_from_db()
    assert rerun.status == "succeeded"
    assert rerun.result["cards_processed"] == CARDS - at_kill
    assert killed.status == "failed"
    assert killed.error.startswith(f"worker lost: its lock job:{JOB} was taken over by run")
    assert "database session ended" in killed.error
    per_card = LoyaltyTransaction.objects.filter(transaction_type="points_expired")
    assert per_card.count() == CARDS == per_card.values("card_id").distinct().count()
    points = points_expired_total()
    assert points == expected_points
    assert ledger_violations() == []
    messages = Notification.objects.filter(template__endswith="points_expired")
    assert messages.count() == CARDS == messages.values("dedup_key").distinct().count()
    assert recovered_in < 60, "the re-run must not wait for the lease to expire"
    say(
        f"re-run started at once: run {rerun.pk} expired the remaining "
        f"{rerun.result['cards_processed']:,} and finished {recovered_in:.1f} s after the kill; "
        f"killed run recorded '{killed.error[:60]}...'; verified {CARDS:,} cards expired once, "
        f"{points:,} points = seeded, ledger exact; {json.dumps(rerun.result)[:80]}; "
        f"total {time.monotonic() - started:.1f} s"
    )
