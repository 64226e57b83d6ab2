"""Point expiration: our chunked set-based job vs a seed-style per-card loop vs one statement.

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/jobs_loyalty .venv/bin/python \
        bench/loyalty_expiration.py --cards 200000 --sample 5000

Use your own dev database: the benchmark adds a merchant with N due cards there (and
deletes it afterwards). The same cards are restored before each variant:

- ours       loyalty.services.expiration.expire_points (chunks of 500, SKIP LOCKED,
             one statement per chunk + outbox rows; customers have no email, so the
             outbox adds nothing and SQL is measured)
- per-card   the seed's loop (select a chunk, per card: INSERT ledger row + UPDATE card,
             commit per chunk), run on `--sample` cards and scaled to N
- limit      one UPDATE ... RETURNING + INSERT for all N cards, no chunks, no locks

Machine noise moves absolute figures; the ratios measured in one run are the figures.
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from loyalty.models import LoyaltyProgram, Merchant  # noqa: E402
from loyalty.services.expiration import expire_points  # noqa: E402


def seed(merchant: Merchant, cards: int) -> None:
    """N due cards with one earn transaction each, set-based (generate_series)."""
    last = timezone.now() - timedelta(days=400)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO loyalty_customer (name, email, phone) SELECT 'bench '||g, '', '' "
            "FROM generate_series(1, %s) g RETURNING id",
            [cards],
        )
        customer_ids = [r[0] for r in cur.fetchall()]
        cur.execute(
            "INSERT INTO loyalty_loyaltycard (merchant_id, customer_id, number, points_balance,"
            " stamp_count, total_points_voided, last_activity_at, is_active, google_object_id,"
            " apple_serial_number) SELECT %s, c, 'B'||%s||'-'||c, 100 + c %% 50, 0, 0, %s, true,"
            " '', '' FROM unnest(%s::bigint[]) c",
            [merchant.pk, merchant.pk, last, customer_ids],
        )
        cur.execute(
            "INSERT INTO loyalty_loyaltytransaction (card_id, merchant_id, transaction_type,"
            " points_delta, points_balance_after, stamps_delta, stamps_balance_after, notes,"
            " transaction_at) SELECT id, merchant_id, 'points_earned', points_balance,"
            " points_balance, 0, 0, '', last_activity_at FROM loyalty_loyaltycard"
            " WHERE merchant_id = %s",
            [merchant.pk],
        )


def restore(merchant: Merchant) -> None:
    """Undo an expiration: drop POINTS_EXPIRED rows, balances back from the earn rows."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "DELETE FROM loyalty_loyaltytransaction WHERE merchant_id = %s"
            " AND transaction_type = 'points_expired'",
            [merchant.pk],
        )
        cur.execute(
            "UPDATE loyalty_loyaltycard c SET points_balance = t.points_delta,"
            " total_points_voided = 0 FROM loyalty_loyaltytransaction t"
            " WHERE t.card_id = c.id AND c.merchant_id = %s",
            [merchant.pk],
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE loyalty_loyaltycard")


def per_card_loop(merchant: Merchant, *, days: int, limit: int) -> int:
    """The seed's shape: chunk of 500 locked, then per card one INSERT and one UPDATE."""
    now = timezone.now()
    threshold = now - timedelta(days=days)
    done = 0
    while done < limit:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "SELECT id, points_balance, stamp_count FROM loyalty_loyaltycard"
                " WHERE merchant_id = %s AND points_balance > 0 AND last_activity_at < %s"
                " AND is_active LIMIT 500 FOR UPDATE SKIP LOCKED",
                [merchant.pk, threshold],
            )
            rows = cur.fetchall()[: limit - done]
            if not rows:
                break
            for card_id, balance, stamps in rows:
                cur.execute(
                    "INSERT INTO loyalty_loyaltytransaction (card_id, merchant_id, store_id,"
                    " transaction_type, points_delta, points_balance_after, stamps_delta,"
                    " stamps_balance_after, notes, transaction_at) VALUES"
                    " (%s, %s, NULL, 'points_expired', %s, 0, 0, %s, %s, %s)",
                    [card_id, merchant.pk, -balance, stamps, "expired", now],
                )
                cur.execute(
                    "UPDATE loyalty_loyaltycard SET points_balance = 0,"
                    " total_points_voided = total_points_voided + %s WHERE id = %s",
                    [balance, card_id],
                )
            done += len(rows)
    return done


def one_statement(merchant: Merchant, *, days: int) -> int:
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "WITH e AS (UPDATE loyalty_loyaltycard c SET points_balance = 0,"
            " total_points_voided = c.total_points_voided + c.points_balance"
            " FROM loyalty_loyaltycard o WHERE o.id = c.id AND c.merchant_id = %s"
            " AND c.points_balance > 0 AND c.is_active AND c.last_activity_at < %s"
            " RETURNING c.id, o.points_balance AS points, c.stamp_count)"
            " INSERT INTO loyalty_loyaltytransaction (card_id, merchant_id, store_id,"
            " transaction_type, points_delta, points_balance_after, stamps_delta,"
            " stamps_balance_after, notes, transaction_at)"
            " SELECT id, %s, NULL, 'points_expired', -points, 0, 0, stamp_count, 'expired', %s"
            " FROM e",
            [merchant.pk, now - timedelta(days=days), merchant.pk, now],
        )
        return cur.rowcount


def timed(label: str, action) -> tuple[float, object]:
    started = time.perf_counter()
    value = action()
    elapsed = time.perf_counter() - started
    print(f"{label:10} {elapsed:8.2f}s  ({value})", flush=True)
    return elapsed, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args()
    merchant = Merchant.objects.create(name="bench expiration")
    program = LoyaltyProgram.objects.create(
        merchant=merchant, name="bench", points_expiration_days=365
    )
    try:
        t0 = time.perf_counter()
        seed(merchant, args.cards)
        restore(merchant)
        print(f"seeded {args.cards} due cards in {time.perf_counter() - t0:.1f}s")
        ours, result = timed("ours", lambda: expire_points(program_id=program.pk))
        assert result["cards_processed"] == args.cards, result
        restore(merchant)
        sample, done = timed(
            "per-card", lambda: per_card_loop(merchant, days=365, limit=args.sample)
        )
        loop = sample * args.cards / done
        print(f"per-card   {loop:8.2f}s  (scaled from {done} cards)")
        restore(merchant)
        limit, _ = timed("limit", lambda: one_statement(merchant, days=365))
        print(f"ours is {loop / ours:.1f}x faster than the per-card loop")
        print(f"ours takes {ours / limit:.2f}x the single-statement limit")
    finally:
        with connection.cursor() as cur:
            cur.execute(
                "DELETE FROM loyalty_loyaltytransaction WHERE merchant_id = %s", [merchant.pk]
            )
            cur.execute(
                "DELETE FROM loyalty_loyaltycard WHERE merchant_id = %s RETURNING customer_id",
                [merchant.pk],
            )
            customers = [r[0] for r in cur.fetchall()]
            cur.execute("DELETE FROM loyalty_customer WHERE id = ANY(%s)", [customers])
        program.delete()
        merchant.delete()


if __name__ == "__main__":
    main()
