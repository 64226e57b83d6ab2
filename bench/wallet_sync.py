"""Wallet sync at scale: our concurrent sync vs the same calls one after another.

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/jobs .venv/bin/python bench/wallet_sync.py

Uses its own database `<name>_loyalty_bench` on the server of DATABASE_URL (default:
.run/database_url), created and migrated if needed; adds one merchant with `--cards`
cards that have both wallets (a Google object, an Apple pass with one registered device)
and deletes it afterwards. The wallets are the project's fakes (devkit.wallets), answering
after `--latency-ms`: Google's token endpoint and walletobjects over HTTP, APNs over
HTTP/2 and TLS, reached by the production clients (google-auth service account, ES256
provider token) through the LOYALTY_* environment, like in production.

- ours        the hourly job's service: every card behind, both wallets
              (LOYALTY_WALLET_SYNC_CONCURRENCY calls in flight, default 32)
- sequential  the same service with one worker (the wallet runbook's loop: one card, one
              call at a time) over the first `--sample` cards, scaled to all cards by wallet calls

Both runs are checked: every card synced in both wallets, none failed, one PATCH per
Google object and one push per device.

Then the lag of the minutely sweep (loyalty.push_wallet_changes), from a change's
commit to its Google PATCH and APNs push: every card gets a purchase (one committed
UPDATE each; the trigger queues it), then one sweep runs and the fakes stamp each call.
A change waits for the next sweep: sweeps are a minute apart, so each change is given a
commit time uniform over the minute before the sweep (seeded); its lag is that wait plus
the measured time from the sweep's start to its call. Reported: p50, p95 and max
(target: max <= 90 s), and what an idle sweep costs (queries, remote calls, time). Do not run it at the same time as
bench/expire_points.py (that one truncates the loyalty tables).
"""

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import own_database, setup_django  # noqa: E402

TARGET_RATIO = 10.0
TARGET_SECONDS = 30.0
TARGET_LAG_SECONDS = 90.0
SWEEP_EVERY_SECONDS = 60.0


def seed(cards: int):
    from django.db import transaction
    from django.utils import timezone

    from devkit.demos.loyalty import opening_balance
    from loyalty.models import (
        AppleDeviceRegistration,
        Customer,
        LoyaltyCard,
        LoyaltyTransaction,
        Merchant,
    )

    now = timezone.now()
    with transaction.atomic():
        merchant = Merchant.objects.create(name="Bench wallet merchant")
        customers = Customer.objects.bulk_create(
            Customer(name=f"Wallet customer {i}") for i in range(cards)
        )
        stamp = now.strftime("%Y%m%d%H%M%S")
        rows = LoyaltyCard.objects.bulk_create(
            LoyaltyCard(
                merchant=merchant,
                customer=customer,
                number=f"W{stamp}{i:06d}",
                points_balance=10 + i,
                stamp_count=i % 10,
                last_activity_at=now,
                google_object_id=f"g-{stamp}-{i}",
                apple_serial_number=f"a-{stamp}-{i}",
            )
            for i, customer in enumerate(customers)
        )
        AppleDeviceRegistration.objects.bulk_create(
            AppleDeviceRegistration(
                device_library_identifier=f"bench{card.pk}", push_token=f"{card.pk:064x}", card=card
            )
            for card in rows
        )
        LoyaltyTransaction.objects.bulk_create(opening_balance(card, at=now) for card in rows)
    return merchant, [card.pk for card in rows]


def cleanup(merchant) -> None:
    from loyalty.models import Customer, LoyaltyCard, LoyaltyTransaction

    customers = list(
        LoyaltyCard.objects.filter(merchant=merchant).values_list("customer_id", flat=True)
    )
    LoyaltyTransaction.objects.filter(merchant=merchant).delete()
    LoyaltyCard.objects.filter(merchant=merchant).delete()
    Customer.objects.filter(pk__in=customers).delete()
    merchant.delete()


def calls_for(card_ids: list[int]) -> int:
    """Wallet calls a sync of these cards makes: one PATCH per card, one push per device."""
    from loyalty.models import AppleDeviceRegistration

    return len(card_ids) + AppleDeviceRegistration.objects.filter(card_id__in=card_ids).count()


def calls_made(fakes) -> int:
    return len(fakes.google.calls) + len(fakes.apns.pushes)


def clear(fakes) -> None:
    fakes.google.calls.clear()
    fakes.apns.pushes.clear()


def start_fakes(latency_ms: float):
    """Both wallet fakes with throwaway keys; their LOYALTY_* settings in the environment."""
    import tempfile

    from devkit.wallets.apns import ApnsFaults
    from devkit.wallets.google import Faults
    from devkit.wallets.keys import generate_keys
    from devkit.wallets.kit import WalletFakes

    latency = latency_ms / 1000
    fakes = WalletFakes(
        generate_keys(Path(tempfile.mkdtemp(prefix="bench-wallet-keys-"))),
        google_faults=Faults(latency_seconds=latency),
        apns_faults=ApnsFaults(latency_seconds=latency),
    ).start()
    # Endpoints and credentials come from the environment, as in production.
    os.environ.update(fakes.settings())
    return fakes


def measure(fakes, card_ids: list[int], sample_ids: list[int]) -> tuple[float, float]:
    """(ours, sequential sample) seconds, each run checked: all synced, one call per pass."""
    from loyalty.services.wallet_sync import sync_wallet_passes

    cards = len(card_ids)
    started = time.perf_counter()
    ours = sync_wallet_passes(max_cards=cards)
    ours_s = time.perf_counter() - started
    got = (ours["cards_considered"], ours["synced"], ours["failed"], calls_made(fakes))
    if got != (cards, cards, 0, calls_for(card_ids)) or any(ours["behind_after"].values()):
        statuses = Counter(c.status for c in fakes.google.calls)
        pushes = Counter(p.status for p in fakes.apns.pushes)
        raise SystemExit(f"ours: {got}: google {statuses}, apns {pushes}: {ours}")

    clear(fakes)
    started = time.perf_counter()
    seq = sync_wallet_passes(card_ids=sample_ids, max_workers=1)
    sample_s = time.perf_counter() - started
    got = (seq["synced"], seq["failed"], calls_made(fakes))
    if got != (len(sample_ids), 0, calls_for(sample_ids)):
        raise SystemExit(f"sequential: {got}: {seq}")
    return ours_s, sample_s


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure_lag(fakes, card_ids: list[int], *, seed: int = 23) -> dict:
    """The minutely sweep: idle cost, then the lag of one change per card (see module doc)."""
    import random

    from django.db import connection
    from django.db.models import F
    from django.test.utils import CaptureQueriesContext

    from loyalty.models import AppleDeviceRegistration, LoyaltyCard
    from loyalty.services.wallet_sync import push_wallet_changes

    push_wallet_changes()  # drain whatever is queued
    clear(fakes)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        idle = push_wallet_changes()
        idle_s = time.perf_counter() - started
    assert idle["changes_taken"] == 0, idle
    idle_calls = calls_made(fakes)

    for pk in card_ids:  # a purchase per card, each committed on its own
        LoyaltyCard.objects.filter(pk=pk).update(points_balance=F("points_balance") + 1)
    clear(fakes)
    sweep_start = time.time()
    started = time.perf_counter()
    result = push_wallet_changes(max_cards=len(card_ids))
    sweep_s = time.perf_counter() - started
    if (result["changes_taken"], result["synced"], result["failed"]) != (len(card_ids),) * 2 + (0,):
        raise SystemExit(f"sweep: {result}")

    rng = random.Random(seed)
    wait = {pk: rng.uniform(0, SWEEP_EVERY_SECONDS) for pk in card_ids}
    by_object = dict(
        LoyaltyCard.objects.filter(pk__in=card_ids).values_list("google_object_id", "pk")
    )
    by_token = dict(
        AppleDeviceRegistration.objects.filter(card_id__in=card_ids).values_list(
            "push_token", "card_id"
        )
    )
    lags = [wait[by_object[c.key]] + c.at - sweep_start for c in fakes.google.calls]
    lags += [wait[by_token[p.device_token]] + p.at - sweep_start for p in fakes.apns.pushes]
    return {
        "idle_queries": len(queries.captured_queries),
        "idle_calls": idle_calls,
        "idle_ms": idle_s * 1000,
        "sweep_s": sweep_s,
        "calls": len(lags),
        "p50": percentile(lags, 0.50),
        "p95": percentile(lags, 0.95),
        "max": max(lags),
    }


def report_lag(lag: dict, *, cards: int) -> int:
    ok = lag["max"] <= TARGET_LAG_SECONDS and lag["idle_calls"] == 0
    print()
    print(
        f"minutely sweep, idle:   {lag['idle_queries']} query, {lag['idle_calls']} remote "
        f"calls, {lag['idle_ms']:.1f} ms"
    )
    print(
        f"minutely sweep, {cards:,} changed cards: {lag['sweep_s']:.2f} s for {lag['calls']:,} "
        "calls"
    )
    print(
        f"lag commit -> push:     p50 {lag['p50']:5.1f} s  p95 {lag['p95']:5.1f} s  "
        f"max {lag['max']:5.1f} s  (target max <= {TARGET_LAG_SECONDS:g} s)  "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


def report(*, cards: int, ours_s: float, sequential_s: float, sample: int, sample_s: float) -> int:
    print()
    print(f"{'variant':<24}{'seconds':>10}{'cards/s':>10}  note")
    print(f"{'ours (concurrent)':<24}{ours_s:>10.2f}{cards / ours_s:>10.0f}  all cards")
    print(
        f"{'sequential calls':<24}{sequential_s:>10.2f}{cards / sequential_s:>10.0f}  "
        f"{sample} cards in {sample_s:.2f} s, scaled by calls"
    )
    ratio = sequential_s / ours_s
    ok_ratio, ok_time = ratio >= TARGET_RATIO, ours_s < TARGET_SECONDS
    print()
    print(
        f"ours vs sequential: {ratio:6.1f}x faster (target >= {TARGET_RATIO:g}x)  "
        f"{'PASS' if ok_ratio else 'FAIL'}"
    )
    print(
        f"ours wall time:     {ours_s:6.2f} s     (target < {TARGET_SECONDS:g} s)  "
        f"{'PASS' if ok_time else 'FAIL'}"
    )
    return 0 if ok_ratio and ok_time else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=100, help="cards synced sequentially")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args(argv)

    url = own_database("loyalty_bench", error=parser.error)
    fakes = start_fakes(args.latency_ms)
    setup_django(url)

    from loyalty.conf import loyalty_settings

    merchant, card_ids = seed(args.cards)
    sample_ids = card_ids[: args.sample]
    try:
        total_calls = calls_for(card_ids)
        print(
            f"wallet sync: {args.cards:,} cards with both wallets ({total_calls:,} calls: Google "
            f"PATCHes + APNs pushes over HTTP/2), fakes at {args.latency_ms:g} ms per call, "
            f"concurrency {loyalty_settings.WALLET_SYNC_CONCURRENCY}, {os.cpu_count()} CPUs, "
            f"database {url.rsplit('/', 1)[-1]}",
            flush=True,
        )
        ours_s, sample_s = measure(fakes, card_ids, sample_ids)
        sequential_s = sample_s * total_calls / calls_for(sample_ids)
        lag = measure_lag(fakes, card_ids)
    finally:
        cleanup(merchant)
        fakes.stop()
    code = report(
        cards=args.cards,
        ours_s=ours_s,
        sequential_s=sequential_s,
        sample=len(sample_ids),
        sample_s=sample_s,
    )
    return report_lag(lag, cards=args.cards) or code


if __name__ == "__main__":
    sys.exit(main())
