"""`manage.py demo --only loyalty`: seed a merchant with thousands of cards, run both jobs
through the real cluster, print their results. The clusters are started by the demo command.

The wallet sync talks to a local fake wallet: `cluster_env` starts it before the clusters
and points LOYALTY_GOOGLE_WALLET_URL / LOYALTY_APPLE_WALLET_URL (and demo tokens) at it in
every qcluster's environment and in this process. Endpoints are never job arguments.
"""

import json
import os
import time
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs.commands import command_user
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job
from jobs.services.waiting import wait_for_run
from loyalty.fake_wallet import FakeWallet, Faults
from loyalty.models import Customer, LoyaltyCard, LoyaltyProgram, LoyaltyTransaction, Merchant

#: (state, how many, days inactive, points, has wallet pass, is_active)
CARD_STATES = (
    ("recently active, wallet pass", 1000, 0.01, 250, True, True),
    ("recently active, no pass", 500, 0.02, 120, False, True),
    ("in the 14-day warning window", 1200, 355, 80, False, True),
    ("past expiration", 1500, 400, 60, False, True),
    ("inactive but not yet due", 800, 200, 40, False, True),
    ("no points", 400, 500, 0, False, True),
    ("deactivated card", 200, 500, 90, False, False),
)


#: The fake wallet of this demo process, started by cluster_env (the clusters call it).
_wallet: FakeWallet | None = None


def cluster_env(*, out: Callable[[str], None]) -> dict[str, str]:
    """Start the fake wallet (50 ms, 1% 503s) and return the qclusters' wallet settings."""
    global _wallet
    if _wallet is None:
        _wallet = FakeWallet(faults=Faults(latency_seconds=0.05, failure_rate=0.01, seed=7))
        _wallet.start()
    env = {
        "LOYALTY_GOOGLE_WALLET_URL": _wallet.base_url,
        "LOYALTY_APPLE_WALLET_URL": _wallet.base_url,
        # Demo tokens: a real token from the environment is never sent to the fake.
        "LOYALTY_GOOGLE_WALLET_TOKEN": "demo-google-token",
        "LOYALTY_APPLE_WALLET_TOKEN": "demo-apple-token",
    }
    os.environ.update(env)
    out(f"fake wallet on {_wallet.base_url}: the clusters' wallet endpoints (environment)")
    return env


def seed_demo_merchant(*, out: Callable[[str], None]) -> tuple[LoyaltyProgram, list[int]]:
    """One merchant, one 365-day program, cards in every state; bulk inserts, one transaction."""
    now = timezone.now()
    stamp = now.strftime("%Y%m%d%H%M%S")
    with transaction.atomic():
        merchant = Merchant.objects.create(name=f"Demo Coffee {stamp}")
        program = LoyaltyProgram.objects.create(
            merchant=merchant, name="Demo points", points_expiration_days=365
        )
        total = sum(state[1] for state in CARD_STATES)
        customers = Customer.objects.bulk_create(
            Customer(
                name=f"Demo customer {i}",
                # Some customers by email, some by SMS, most unreachable: a realistic outbox.
                email=f"demo{i}@example.com" if i % 20 == 0 else "",
                phone=f"+1555{i:07d}" if i % 20 == 1 else "",
            )
            for i in range(total)
        )
        cards: list[LoyaltyCard] = []
        customer_iter = iter(customers)
        for _state, count, days, points, wallet, active in CARD_STATES:
            for i in range(count):
                number = f"D{stamp}{len(cards):06d}"
                cards.append(
                    LoyaltyCard(
                        merchant=merchant,
                        customer=next(customer_iter),
                        number=number,
                        points_balance=points,
                        stamp_count=i % 10,
                        last_activity_at=now - timedelta(days=days),
                        is_active=active,
                        google_object_id=f"g-{number}" if wallet and i % 3 else "",
                        apple_serial_number=f"a-{number}" if wallet and i % 3 != 1 else "",
                    )
                )
        LoyaltyCard.objects.bulk_create(cards, batch_size=2000)
        LoyaltyTransaction.objects.bulk_create(
            (
                LoyaltyTransaction(
                    card=card,
                    merchant=merchant,
                    transaction_type=LoyaltyTransaction.Type.POINTS_EARNED,
                    points_delta=card.points_balance,
                    points_balance_after=card.points_balance,
                    stamps_balance_after=card.stamp_count,
                    transaction_at=card.last_activity_at,
                )
                for card in cards
            ),
            batch_size=2000,
        )
    for state, count, *_ in CARD_STATES:
        out(f"  {count:5} cards {state}")
    wallet_ids = [c.pk for c in cards if c.google_object_id or c.apple_serial_number]
    return program, wallet_ids


def _run(name: str, kwargs: dict, *, out: Callable[[str], None], timeout_seconds: float) -> JobRun:
    run = enqueue_job(
        name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by=command_user()
    )
    out(f"queued {name} as run #{run.pk}; waiting for the default cluster")
    run = wait_for_run(run.pk, timeout_seconds=timeout_seconds)
    out(f"  #{run.pk} {run.status} in {run.duration_seconds or 0:.2f}s")
    out(f"  result: {json.dumps(run.result)[:600]}")
    if run.error:
        out(f"  error: {run.error}")
    return run


def run_demo(*, out: Callable[[str], None]) -> None:
    started = time.monotonic()
    program, wallet_ids = seed_demo_merchant(out=out)
    out(
        f"seeded merchant {program.merchant} (program #{program.pk}) "
        f"in {time.monotonic() - started:.1f}s"
    )

    _run("loyalty.expire_points", {"program_id": program.pk}, out=out, timeout_seconds=120)
    again = _run("loyalty.expire_points", {"program_id": program.pk}, out=out, timeout_seconds=60)
    if again.result and again.result.get("cards_processed") == 0:
        out("  rerun the same day changed nothing (no card expired or warned twice)")
    queued = Notification.objects.filter(template__startswith="loyalty/notifications/").count()
    out(
        f"  outbox: {queued} loyalty notifications recorded (delivered by the notifications cluster)"
    )

    if _wallet is None:
        raise RuntimeError("run the loyalty demo through `manage.py demo` (cluster_env first)")
    # A slow, slightly flaky wallet; three passes deleted on the wallet side (404: not retried).
    wallet = _wallet
    deleted = LoyaltyCard.objects.filter(pk__in=wallet_ids[:3]).values_list(
        "google_object_id", "apple_serial_number"
    )
    for google, apple in deleted:
        wallet.faults.missing_keys.update({f"google:{google}", f"apple:{apple}"})
    out("fake wallet: 50 ms latency, 1% 503s, 3 deleted passes")
    sync = _run("loyalty.sync_wallet_passes", {}, out=out, timeout_seconds=120)
    out(f"  wallet calls answered: {len(wallet.calls)}")
    if sync.result and sync.result.get("failed_card_ids"):
        card_id = sync.result["failed_card_ids"][0]
        out(f"re-sync one card on demand (runbook): card {card_id}, wallet fixed first")
        wallet.faults.missing_keys.clear()
        wallet.faults.failure_rate = 0.0
        _run("loyalty.sync_wallet_passes", {"card_id": card_id}, out=out, timeout_seconds=60)
    out(f"loyalty demo done in {time.monotonic() - started:.1f}s")
