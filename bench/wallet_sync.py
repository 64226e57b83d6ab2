"""Wallet sync at scale: our concurrent sync vs the same calls one after another.

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/jobs .venv/bin/python bench/wallet_sync.py

Uses its own database `<name>_loyalty_bench` on the server of DATABASE_URL (default:
.run/database_url), created and migrated if needed; adds one merchant with `--cards`
cards that have a wallet pass (every card a Google pass, every other card an Apple pass
too) and a transaction now, and deletes it afterwards. The wallet is the project's fake
wallet (loyalty.fake_wallet) answering after `--latency-ms`, reached through
LOYALTY_GOOGLE_WALLET_URL / LOYALTY_APPLE_WALLET_URL like in production.

- ours        loyalty.services.wallet_sync.sync_wallet_passes over all cards
              (LOYALTY_WALLET_SYNC_CONCURRENCY calls in flight, default 32)
- sequential  the same service with one worker (seed 003's loop: one card, one call at a
              time) over the first `--sample` cards, scaled to all cards by wallet calls

Both runs are checked: every card synced, none failed, one call per pass. Do not run it
at the same time as bench/expire_points.py (that one truncates the loyalty tables).
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_database_url, ensure_database, setup_django  # noqa: E402

TARGET_RATIO = 10.0
TARGET_SECONDS = 30.0


def seed(cards: int):
    from django.db import transaction
    from django.utils import timezone

    from loyalty.models import Customer, LoyaltyCard, LoyaltyTransaction, Merchant

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
                apple_serial_number=f"a-{stamp}-{i}" if i % 2 == 0 else "",
            )
            for i, customer in enumerate(customers)
        )
        LoyaltyTransaction.objects.bulk_create(
            LoyaltyTransaction(
                card=card,
                merchant=merchant,
                transaction_type=LoyaltyTransaction.Type.POINTS_EARNED,
                points_delta=card.points_balance,
                points_balance_after=card.points_balance,
                stamps_balance_after=card.stamp_count,
                transaction_at=now,
            )
            for card in rows
        )
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
    from django.db.models import Q

    from loyalty.models import LoyaltyCard

    cards = LoyaltyCard.objects.filter(pk__in=card_ids)
    return cards.count() + cards.filter(~Q(apple_serial_number="")).count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=100, help="cards synced sequentially")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args(argv)

    source_url = os.environ.get("DATABASE_URL")
    if not source_url and (ROOT / ".run" / "database_url").exists():
        source_url = (ROOT / ".run" / "database_url").read_text().strip()
    if not source_url:
        parser.error("DATABASE_URL is not set")
    url = bench_database_url(source_url, suffix="loyalty_bench")
    ensure_database(url)

    from loyalty.fake_wallet import FakeWallet, Faults

    wallet = FakeWallet(faults=Faults(latency_seconds=args.latency_ms / 1000)).start()
    # Endpoints and tokens come from the environment, as in production (never job arguments).
    os.environ.update(
        LOYALTY_GOOGLE_WALLET_URL=wallet.base_url,
        LOYALTY_APPLE_WALLET_URL=wallet.base_url,
        LOYALTY_GOOGLE_WALLET_TOKEN="bench-google-token",
        LOYALTY_APPLE_WALLET_TOKEN="bench-apple-token",
    )
    setup_django(url)

    from loyalty.conf import loyalty_settings
    from loyalty.services.wallet_sync import sync_wallet_passes

    merchant, card_ids = seed(args.cards)
    try:
        total_calls = calls_for(card_ids)
        sample_ids = card_ids[: args.sample]
        sample_calls = calls_for(sample_ids)
        print(
            f"wallet sync: {args.cards:,} cards ({total_calls:,} wallet calls), fake wallet "
            f"{args.latency_ms:g} ms per call, concurrency "
            f"{loyalty_settings.WALLET_SYNC_CONCURRENCY}, {os.cpu_count()} CPUs, "
            f"database {url.rsplit('/', 1)[-1]}",
            flush=True,
        )

        started = time.perf_counter()
        ours = sync_wallet_passes(card_ids=card_ids)
        ours_s = time.perf_counter() - started
        if (ours["synced"], ours["failed"], len(wallet.calls)) != (args.cards, 0, total_calls):
            raise SystemExit(f"ours: {ours['synced']} synced, {len(wallet.calls)} calls: {ours}")

        wallet.calls.clear()
        started = time.perf_counter()
        seq = sync_wallet_passes(card_ids=sample_ids, max_workers=1)
        sample_s = time.perf_counter() - started
        if (seq["synced"], seq["failed"], len(wallet.calls)) != (len(sample_ids), 0, sample_calls):
            raise SystemExit(f"sequential: {seq}")
        sequential_s = sample_s * total_calls / sample_calls
    finally:
        cleanup(merchant)
        wallet.stop()

    print()
    print(f"{'variant':<24}{'seconds':>10}{'cards/s':>10}  note")
    print(f"{'ours (concurrent)':<24}{ours_s:>10.2f}{args.cards / ours_s:>10.0f}  all cards")
    print(
        f"{'sequential calls':<24}{sequential_s:>10.2f}{args.cards / sequential_s:>10.0f}  "
        f"{len(sample_ids)} cards in {sample_s:.2f} s, scaled by calls"
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


if __name__ == "__main__":
    sys.exit(main())
