"""`manage.py demo --only loyalty`: seed a merchant with thousands of cards, run both jobs
through the real cluster, print their results. The clusters are started by the demo command.

The wallet sync talks to local fakes of Google Wallet and APNs with throwaway keys:
`cluster_env` starts them before the clusters and puts the LOYALTY_* settings that point
the real clients at them (service account key file, APNs key and CA, pass certificates)
in every qcluster's environment and in this process. Endpoints are never job arguments.
"""

import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from devkit.waiting import wait_for_run
from devkit.wallets.apns import ApnsFaults
from devkit.wallets.google import Faults
from devkit.wallets.keys import generate_keys
from devkit.wallets.kit import WalletFakes
from jobs.cli.commands import command_user
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job
from loyalty.models import (
    AppleDeviceRegistration,
    Customer,
    LoyaltyCard,
    LoyaltyProgram,
    LoyaltyTransaction,
    Merchant,
)
from loyalty.selectors import expiration_day

#: (state, how many, days inactive, points, has wallet pass, is_active, warned days ago)
CARD_STATES = (
    ("recently active, wallet pass", 1000, 0.01, 250, True, True, None),
    ("recently active, no pass", 500, 0.02, 120, False, True, None),
    ("in the 14-day warning window", 1200, 355, 80, False, True, None),
    ("past expiration, warned 20 days ago", 1500, 400, 60, False, True, 20),
    ("past expiration, never warned (warned first)", 300, 400, 60, False, True, None),
    ("inactive but not yet due", 800, 200, 40, False, True, None),
    ("no points", 400, 500, 0, False, True, None),
    ("deactivated card", 200, 500, 90, False, False, None),
)


#: The wallet fakes of this demo process, started by cluster_env (the clusters call them).
_fakes: WalletFakes | None = None


def cluster_env(*, out: Callable[[str], None]) -> dict[str, str]:
    """Start the wallet fakes (50 ms, 1% 503s) and return the qclusters' wallet settings."""
    global _fakes
    if _fakes is None:
        keys = generate_keys(Path(tempfile.mkdtemp(prefix="demo-wallet-keys-")))
        _fakes = WalletFakes(
            keys,
            google_faults=Faults(latency_seconds=0.05, failure_rate=0.01, seed=7),
            apns_faults=ApnsFaults(latency_seconds=0.05),
        ).start()
    env = _fakes.settings()
    os.environ.update(env)
    out(
        f"wallet fakes: Google {_fakes.google.base_url}, APNs {_fakes.apns.base_url} "
        "(throwaway keys; the clusters' LOYALTY_* environment)"
    )
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
        for _state, count, days, points, wallet, active, warned_days_ago in CARD_STATES:
            activity = now - timedelta(days=days)
            warning = {}
            if warned_days_ago is not None:  # as the run of that night recorded it
                warned_at = now - timedelta(days=warned_days_ago)
                warning = {
                    "last_expiration_warning_at": warned_at,
                    "expiration_warning_cycle_at": activity,
                    "points_expire_on": expiration_day(program, now=warned_at).promise(activity),
                }
            for i in range(count):
                number = f"D{stamp}{len(cards):06d}"
                cards.append(
                    LoyaltyCard(
                        merchant=merchant,
                        customer=next(customer_iter),
                        number=number,
                        points_balance=points,
                        stamp_count=i % 10,
                        last_activity_at=activity,
                        is_active=active,
                        google_object_id=f"g-{number}" if wallet and i % 3 else "",
                        apple_serial_number=f"a-{number}" if wallet and i % 3 != 1 else "",
                        **warning,
                    )
                )
        LoyaltyCard.objects.bulk_create(cards, batch_size=2000)
        LoyaltyTransaction.objects.bulk_create(
            (opening_balance(c, at=c.last_activity_at) for c in cards),
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

    if _fakes is None:
        raise RuntimeError("run the loyalty demo through `manage.py demo` (cluster_env first)")
    _demo_wallets(_fakes, wallet_ids, program, out=out)
    out(f"loyalty demo done in {time.monotonic() - started:.1f}s")


def _demo_wallets(
    fakes: WalletFakes,
    wallet_ids: list[int],
    program: LoyaltyProgram,
    *,
    out: Callable[[str], None],
) -> None:
    """Every pass is behind on first sight; three Google objects were deleted (re-created);
    then a Google outage: Apple goes on, Google's cards stay behind and are caught up."""
    program.google_wallet_class_id = "3388000000000000000.demo_points"
    program.save(update_fields=["google_wallet_class_id"])
    cards = LoyaltyCard.objects.filter(pk__in=wallet_ids).order_by("pk")
    AppleDeviceRegistration.objects.bulk_create(
        AppleDeviceRegistration(
            device_library_identifier=f"demo{card.pk}", push_token=f"{card.pk:064x}", card=card
        )
        for card in cards.exclude(apple_serial_number="")[:200]
    )
    deleted = list(
        cards.exclude(google_object_id="").values_list("google_object_id", flat=True)[:3]
    )
    fakes.google.deleted.update(deleted)
    out("wallet fakes: 50 ms per call, 1% Google 503s, 3 Google objects deleted, 200 devices")
    _run("loyalty.sync_wallet_passes", {}, out=out, timeout_seconds=180)
    out(f"  Google calls {len(fakes.google.calls)}, APNs pushes {len(fakes.apns.pushes)}")

    out("Google Wallet down (every call 503) while 30 cards change:")
    fakes.google.faults.failure_rate = 1.0
    changed = list(cards.exclude(google_object_id="")[:30])
    for card in changed:
        card.points_balance += 10
        card.save(update_fields=["points_balance"])
    _run("loyalty.sync_wallet_passes", {}, out=out, timeout_seconds=300)
    out("Google back: the next hourly run catches up every card still behind, once")
    fakes.google.faults.failure_rate = 0.0
    _run("loyalty.sync_wallet_passes", {}, out=out, timeout_seconds=180)


def opening_balance(card: LoyaltyCard, *, at: datetime) -> LoyaltyTransaction:
    """The earn row that accounts for a card created with a balance (demo, test and bench
    data): without it the ledger invariant (balance = sum of deltas) would not hold. Unsaved."""
    return LoyaltyTransaction(
        card=card,
        merchant_id=card.merchant_id,
        transaction_type=LoyaltyTransaction.Type.POINTS_EARNED,
        points_delta=card.points_balance,
        points_balance_after=card.points_balance,
        stamps_balance_after=card.stamp_count,
        transaction_at=at,
    )
