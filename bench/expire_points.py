"""Point expiration at scale: our chunked job vs the source's per-card loop vs one statement.

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/jobs .venv/bin/python bench/expire_points.py

The benchmark creates (and migrates) its own database `<name>_loyalty_bench` on the
server of DATABASE_URL (default: .run/database_url) and never touches `<name>` itself.
It seeds one merchant with `--cards` cards due for expiration (plus `--other-cards`
recently active ones that must be left alone), customers reachable by email (80%),
SMS (10%) or not at all (10%), and one earn transaction per card. Before each variant
the cards and ledger are reloaded from a snapshot (same ids, same rows), the loyalty
outbox rows are deleted, and the tables are VACUUM ANALYZEd and checkpointed, so every
variant starts from identical data and statistics (autovacuum is off on these tables
in the bench database only, so it never lands inside one variant's timing):

- ours      loyalty.services.expiration.expire_points: the real service (warning pass,
            then chunks of CHUNK_SIZE, each in its own transaction: one statement locks
            the cards, a second updates them and writes the ledger rows while the
            chunk's notifications are rendered by the template engine on a helper
            thread, then they are inserted with COPY + one statement)
- seed loop the loyalty source's shape (docs/sources.md): chunk of 500 locked FOR UPDATE
            SKIP LOCKED, per card an INSERT of the ledger row and an UPDATE of the card,
            commit, then per card: load the card, load its customer, queue its
            notification (one outbox row).
            Run on `--sample` cards and scaled to `--cards`.
- limit     one statement: UPDATE all due cards + INSERT their ledger rows + INSERT
            their outbox rows (rendered in SQL), no chunks, no locks, no Python.

After each variant the end state is checked: ledger invariant over every card,
counts, and a per-card fingerprint (balance, voided, ledger rows, outbox row with its
rendered subject and body) equal to the other variants' (the seed loop: on its sample).
Machine noise moves absolute figures; the ratios measured in one run are the result.
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import execute, own_database, setup_django  # noqa: E402

TARGET_VS_LOOP = 20.0
TARGET_VS_LIMIT = 2.0
DAYS = 365
MERCHANT_NAME = "Bench Coffee"
#: Tables the variants write (or read): vacuumed and analyzed before each, by the bench only.
BENCH_TABLES = (
    "loyalty_loyaltycard",
    "loyalty_loyaltytransaction",
    "loyalty_customer",
    "jobs_notification",
    "jobs_jobrun",
)


# --- database ------------------------------------------------------------------------------


# --- data ------------------------------------------------------------------------------------


def seed(cards: int, other_cards: int):
    """Fresh bench tables: one merchant, `cards` due + `other_cards` recent cards, snapshots."""
    from django.db import transaction
    from django.utils import timezone

    from loyalty.models import LoyaltyProgram, Merchant

    execute(
        "TRUNCATE loyalty_loyaltytransaction, loyalty_loyaltycard, loyalty_customer,"
        " loyalty_loyaltyprogram, loyalty_store, loyalty_merchant,"
        " loyalty_walletsyncstate, loyalty_walletchange, loyalty_appledeviceregistration"
        " RESTART IDENTITY"
    )
    execute("DELETE FROM jobs_notification WHERE template LIKE 'loyalty/%%'")
    execute("DROP TABLE IF EXISTS bench_card_snapshot, bench_txn_snapshot")
    now = timezone.now()
    total = cards + other_cards
    with transaction.atomic():
        merchant = Merchant.objects.create(name=MERCHANT_NAME)
        program = LoyaltyProgram.objects.create(
            merchant=merchant, name="Bench points", points_expiration_days=DAYS
        )
        execute(
            "INSERT INTO loyalty_customer (name, email, phone)"
            " SELECT 'Customer ' || g,"
            "        CASE WHEN g %% 10 < 8 THEN 'c' || g || '@example.com' ELSE '' END,"
            "        CASE WHEN g %% 10 = 8 THEN '+1555' || lpad(g::text, 7, '0') ELSE '' END"
            "   FROM generate_series(1, %s) g",
            [total],
        )
        # Due cards inactive 380..399 days (whole seconds: several distinct cycles), the
        # others active in the last 30 days; ids interleave so the walk has to filter.
        execute(
            "INSERT INTO loyalty_loyaltycard (merchant_id, customer_id, number, points_balance,"
            " stamp_count, total_points_voided, last_activity_at, is_active,"
            " google_object_id, apple_serial_number)"
            " SELECT %s, cu.id, 'B' || lpad(cu.id::text, 9, '0'), 1 + cu.id %% 997, cu.id %% 10,"
            "        cu.id %% 7,"
            "        date_trunc('second', %s::timestamptz) - CASE WHEN r.due"
            "            THEN make_interval(days => 380 + (cu.id %% 20)::int, secs => cu.id %% 3600)"
            "            ELSE make_interval(days => (cu.id %% 30)::int) END,"
            "        true, '', ''"
            "   FROM loyalty_customer cu,"
            "        LATERAL (SELECT (cu.id * 7919) %% %s < %s AS due) r",
            [merchant.pk, now, total, cards],
        )
        # The due cards got their warning 20 days ago, for this cycle, as the nightly run
        # records it (promised day: 14 days ago): the run expires them now.
        execute(
            "UPDATE loyalty_loyaltycard"
            "   SET last_expiration_warning_at = %(now)s - interval '20 days',"
            "       expiration_warning_cycle_at = last_activity_at,"
            "       points_expire_on = (%(now)s AT TIME ZONE 'UTC')::date - 14"
            " WHERE last_activity_at < %(now)s - interval '365 days'",
            {"now": now},
        )
        execute(
            "INSERT INTO loyalty_loyaltytransaction (card_id, merchant_id, transaction_type,"
            " points_delta, points_balance_after, stamps_delta, stamps_balance_after, notes,"
            " transaction_at)"
            " SELECT id, merchant_id, 'points_earned', points_balance, points_balance,"
            "        stamp_count, stamp_count, '', last_activity_at FROM loyalty_loyaltycard"
        )
    # restore() vacuums and analyzes before every variant; a background autovacuum landing
    # in one variant's timing (the chunked one runs longer) and after another's is noise.
    for table in BENCH_TABLES:
        execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    execute("CREATE UNLOGGED TABLE bench_card_snapshot AS SELECT * FROM loyalty_loyaltycard")
    execute("CREATE UNLOGGED TABLE bench_txn_snapshot AS SELECT * FROM loyalty_loyaltytransaction")
    return program


def restore() -> None:
    """Identical start for every variant: same rows and ids, no outbox rows, fresh statistics."""
    from django.db import connection

    execute(
        "TRUNCATE loyalty_loyaltytransaction, loyalty_loyaltycard,"
        " loyalty_walletsyncstate, loyalty_walletchange, loyalty_appledeviceregistration"
    )
    execute("INSERT INTO loyalty_loyaltycard SELECT * FROM bench_card_snapshot ORDER BY id")
    execute("INSERT INTO loyalty_loyaltytransaction SELECT * FROM bench_txn_snapshot ORDER BY id")
    execute("DELETE FROM jobs_notification WHERE template LIKE 'loyalty/%%'")
    # Outbox kicks of the previous variant: the bench has no cluster to run them.
    execute("DELETE FROM jobs_jobrun WHERE job = 'jobs.deliver_notifications'")
    execute("DELETE FROM django_q_ormq")
    for table in BENCH_TABLES:
        execute(f"VACUUM ANALYZE {table}")
    execute("CHECKPOINT")
    connection.close()  # a fresh session: no plan or catalog cache carried between variants


FINGERPRINT = """
SELECT c.id, md5(concat_ws('|', c.points_balance, c.total_points_voided, c.stamp_count,
                 c.last_expiration_warning_at IS NULL, c.is_active, t.rows,
                 n.channel, n.recipient, n.template, n.subject, n.body, n.dedup_key, n.status))
  FROM loyalty_loyaltycard c
  LEFT JOIN (SELECT card_id, string_agg(concat_ws(',', transaction_type, points_delta,
                    points_balance_after, stamps_delta, stamps_balance_after, notes, store_id,
                    merchant_id), ';' ORDER BY transaction_type, id) AS rows
               FROM loyalty_loyaltytransaction GROUP BY card_id) t ON t.card_id = c.id
  LEFT JOIN jobs_notification n
         ON n.template LIKE 'loyalty/%%' AND split_part(n.dedup_key, ':', 2) = c.id::text
"""


def fingerprint() -> dict[int, str]:
    return dict(execute(FINGERPRINT))


def check_state(*, expected_cards: int, expected_points: int, expected_notes: int | None) -> None:
    """Ledger invariant over every card, then the counts of what a run must have written."""
    violations = execute(
        "SELECT count(*) FROM (SELECT c.id FROM loyalty_loyaltycard c"
        " JOIN loyalty_loyaltytransaction t ON t.card_id = c.id GROUP BY c.id"
        " HAVING c.points_balance <> sum(t.points_delta)) v"
    )[0][0]
    expired, points, voided = execute(
        "SELECT count(*), -coalesce(sum(points_delta), 0),"
        " (SELECT sum(total_points_voided) - (SELECT sum(total_points_voided)"
        "   FROM bench_card_snapshot) FROM loyalty_loyaltycard)"
        " FROM loyalty_loyaltytransaction WHERE transaction_type = 'points_expired'"
    )[0]
    notes = execute(
        "SELECT count(*) FROM jobs_notification WHERE template = 'loyalty/notifications/points_expired'"
    )[0][0]
    problems = []
    if violations:
        problems.append(f"{violations} cards break the ledger invariant")
    if expected_notes is None:  # checked card by card through the fingerprints
        expected_notes = notes
    if (expired, points, voided, notes) != (
        expected_cards,
        expected_points,
        expected_points,
        expected_notes,
    ):
        problems.append(
            f"expired {expired} cards / {points} points / voided {voided} / {notes} notifications,"
            f" expected {expected_cards} / {expected_points} / {expected_points} / {expected_notes}"
        )
    if problems:
        raise SystemExit("end state check FAILED: " + "; ".join(problems))


# --- variants --------------------------------------------------------------------------------


def run_ours(program, *, chunk_size: int) -> dict:
    from loyalty.services.expiration import expire_points

    return expire_points(program_id=program.pk, chunk_size=chunk_size)


def run_seed_loop(program, *, limit: int) -> tuple[int, int]:
    """The loyalty source's `_expire_points_chunked`, statement for statement, in the ORM."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from bench.common import send_one
    from loyalty.models import LoyaltyCard, LoyaltyTransaction
    from loyalty.services.expiration import expiration_notes
    from loyalty.services.notifications import CardRow, expired_notifications

    now = timezone.now()
    threshold = now - timedelta(days=program.points_expiration_days)
    cards = points = 0
    while cards < limit:
        with transaction.atomic():
            chunk = list(
                LoyaltyCard.objects.select_for_update(skip_locked=True)
                .filter(
                    merchant_id=program.merchant_id,
                    points_balance__gt=0,
                    last_activity_at__lt=threshold,
                    is_active=True,
                )
                .values_list("id", "points_balance", "stamp_count")[:500]
            )
            if not chunk:
                break
            for card_id, balance, stamp_count in chunk:
                LoyaltyTransaction.objects.create(
                    card_id=card_id,
                    merchant_id=program.merchant_id,
                    store_id=None,
                    transaction_type=LoyaltyTransaction.Type.POINTS_EXPIRED,
                    points_delta=-balance,
                    points_balance_after=0,
                    stamps_delta=0,
                    stamps_balance_after=stamp_count,
                    notes=expiration_notes(program.points_expiration_days),
                    transaction_at=now,
                )
                LoyaltyCard.objects.filter(pk=card_id).update(
                    points_balance=0, total_points_voided=F("total_points_voided") + balance
                )
        for card_id, balance, _stamps in chunk:  # after commit, one card at a time
            card = LoyaltyCard.objects.get(pk=card_id)
            customer = card.customer
            row = CardRow(
                card_id=card.pk,
                number=card.number,
                points=balance,
                last_activity_at=card.last_activity_at,
                customer_name=customer.name,
                email=customer.email,
                phone=customer.phone,
            )
            for item in expired_notifications(
                [row],
                merchant_name=program.merchant.name,
                expiration_days=program.points_expiration_days,
            ):
                send_one(item)
        cards += len(chunk)
        points += sum(balance for _id, balance, _stamps in chunk)
    return cards, points


#: The `points_expired` templates, rendered in SQL (subject whitespace-collapsed, SMS stripped).
LIMIT_STATEMENT = """
WITH expired AS (
    UPDATE loyalty_loyaltycard c
       SET points_balance = 0, total_points_voided = c.total_points_voided + o.points_balance
      FROM loyalty_loyaltycard o
     WHERE o.id = c.id AND c.merchant_id = %(merchant_id)s AND c.is_active
       AND c.points_balance > 0 AND c.last_activity_at < %(threshold)s
    RETURNING c.id, o.points_balance AS points, c.stamp_count, c.number, c.last_activity_at,
              c.customer_id
), ledger AS (
    INSERT INTO loyalty_loyaltytransaction
           (card_id, merchant_id, store_id, transaction_type, points_delta,
            points_balance_after, stamps_delta, stamps_balance_after, notes, transaction_at)
    SELECT id, %(merchant_id)s, NULL, 'points_expired', -points, 0, 0, stamp_count,
           %(notes)s, %(now)s
      FROM expired
), outbox AS (
    INSERT INTO jobs_notification
           (channel, recipient, template, subject, body, dedup_key, status, attempts,
            max_attempts, next_attempt_at, last_error, created_at, requeued_by)
    SELECT CASE WHEN cu.email <> '' THEN 'email' ELSE 'sms' END,
           CASE WHEN cu.email <> '' THEN cu.email ELSE cu.phone END,
           'loyalty/notifications/points_expired',
           CASE WHEN cu.email <> ''
                THEN %(merchant)s || ': ' || e.points || ' points have expired' ELSE '' END,
           CASE WHEN cu.email <> ''
                THEN 'Hello ' || cu.name || E',\\n\\nThe ' || e.points
                     || ' points on your ' || %(merchant)s || ' card ' || e.number
                     || ' have expired after ' || %(days)s || E' days without activity.\\n\\n'
                     || E'Your card stays valid: new purchases earn points again.\\n'
                ELSE %(merchant)s || ': ' || e.points || ' points on card ' || e.number
                     || ' expired after ' || %(days)s || ' days without activity.' END,
           'points_expired:' || e.id || ':'
               || to_char(e.last_activity_at AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS'),
           'pending', 0, %(max_attempts)s, %(now)s, '', %(now)s, ''
      FROM expired e JOIN loyalty_customer cu ON cu.id = e.customer_id
     WHERE cu.email <> '' OR cu.phone <> ''
    ON CONFLICT (dedup_key) DO NOTHING
)
SELECT count(*), coalesce(sum(points), 0) FROM expired
"""


def run_limit(program) -> tuple[int, int]:
    from django.db import transaction
    from django.utils import timezone

    from jobs.runs.retry import DEFAULT_RETRY
    from loyalty.services.expiration import expiration_notes

    now = timezone.now()
    with transaction.atomic():
        [(cards, points)] = execute(
            LIMIT_STATEMENT,
            {
                "merchant_id": program.merchant_id,
                "threshold": now - timedelta(days=DAYS),
                "now": now,
                "notes": expiration_notes(DAYS),
                "merchant": program.merchant.name,
                "days": str(DAYS),
                "max_attempts": DEFAULT_RETRY.max_attempts,
            },
        )
    return cards, points


def explain_chunks(program, *, chunk_size: int) -> None:
    """EXPLAIN ANALYZE of the first expiration chunk's two statements and of the warning
    pick (rolled back)."""
    from django.db import transaction
    from django.utils import timezone

    from loyalty import sql
    from loyalty.selectors import expiration_day
    from loyalty.services.expiration import expiration_notes

    now = timezone.now()
    day = expiration_day(program, now=now)
    params = {
        "merchant_id": program.merchant_id,
        "zone": day.zone,
        "days": day.days,
        "today": day.today,
        "warn_before": day.warn_before,
        "expire_before": day.expire_before,
        "after_id": 0,
        "after_at": None,
        "limit": chunk_size,
        "now": now,
        "notes": expiration_notes(DAYS),
        "card_ids": None,
    }
    with transaction.atomic():
        execute(sql.WALK_IN_INDEX_ORDER)
        picked = execute(sql.PICK_FOR_EXPIRATION, params)
        change = {**params, "ids": [r[0] for r in picked], "points": [r[2] for r in picked]}
        transaction.set_rollback(True)
    statements = (
        ("PICK_FOR_EXPIRATION", sql.PICK_FOR_EXPIRATION, params),
        ("EXPIRE_CARDS", sql.EXPIRE_CARDS, change),
        ("PICK_FOR_WARNING", sql.PICK_FOR_WARNING, params),
    )
    for name, statement, values in statements:
        with transaction.atomic():
            execute(sql.WALK_IN_INDEX_ORDER)
            plan = execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, values)
            transaction.set_rollback(True)
        print(f"-- {name}, first chunk")
        for (line,) in plan:
            print("   ", line)


# --- main ------------------------------------------------------------------------------------


def timed(action):
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=200_000, help="cards due for expiration")
    parser.add_argument("--other-cards", type=int, default=50_000, help="recent cards (not due)")
    parser.add_argument("--sample", type=int, default=2_000, help="cards the seed loop expires")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: the service's")
    parser.add_argument("--rounds", type=int, default=2, help="ours and limit runs (best counts)")
    parser.add_argument("--explain", action="store_true", help="print the chunk plans")
    args = parser.parse_args(argv)

    url = own_database("loyalty_bench", error=parser.error)
    setup_django(url)

    from loyalty.services.expiration import CHUNK_SIZE

    chunk_size = args.chunk_size or CHUNK_SIZE
    print(
        f"point expiration: {args.cards:,} due cards (+{args.other_cards:,} recent), "
        f"chunks of {chunk_size}, seed loop sample {args.sample:,}, {os.cpu_count()} CPUs, "
        f"database {urlsplit(url).path[1:]}",
        flush=True,
    )
    seconds, program = timed(lambda: seed(args.cards, args.other_cards))
    print(f"seeded in {seconds:.1f} s", flush=True)
    restore()
    initial = fingerprint()
    [(due_points, due_notes)] = execute(
        "SELECT sum(c.points_balance), count(*) FILTER (WHERE cu.email <> '' OR cu.phone <> '')"
        " FROM loyalty_loyaltycard c JOIN loyalty_customer cu ON cu.id = c.customer_id"
        " WHERE c.last_activity_at < now() - interval '365 days'"
    )

    if args.explain:
        explain_chunks(program, chunk_size=chunk_size)
        restore()

    def ours() -> float:
        seconds, result = timed(lambda: run_ours(program, chunk_size=chunk_size))
        if (result["cards_processed"], result["points_expired"]) != (args.cards, due_points):
            raise SystemExit(f"ours: unexpected result {result}")
        return seconds

    def limit() -> float:
        seconds, (cards, points) = timed(lambda: run_limit(program))
        if (cards, points) != (args.cards, due_points):
            raise SystemExit(f"limit: expired {cards} cards / {points} points")
        return seconds

    # Rounds alternate the order; each variant's best round counts (noise only adds time).
    times: dict[str, list[float]] = {"ours": [], "limit": []}
    expected: dict[int, str] | None = None
    for round_no in range(args.rounds):
        order = ("ours", "limit") if round_no % 2 == 0 else ("limit", "ours")
        for name in order:
            restore()
            seconds = ours() if name == "ours" else limit()
            check_state(
                expected_cards=args.cards, expected_points=due_points, expected_notes=due_notes
            )
            state = fingerprint()
            expected = expected or state
            if state != expected:
                raise SystemExit(f"{name}: end state differs from the other variant's")
            times[name].append(seconds)
            print(
                f"round {round_no + 1}  {name:<10}{seconds:8.2f} s  end state checked", flush=True
            )
    assert expected is not None
    ours_s, limit_s = min(times["ours"]), min(times["limit"])

    restore()
    sample_s, (done, done_points) = timed(lambda: run_seed_loop(program, limit=args.sample))
    check_state(expected_cards=done, expected_points=done_points, expected_notes=None)
    after = fingerprint()
    sampled = {cid for cid, fp in after.items() if fp != initial[cid]}
    mismatched = [cid for cid in sampled if after[cid] != expected[cid]]
    if mismatched or len(sampled) != done:
        raise SystemExit(f"seed loop: {len(mismatched)} cards differ from ours: {mismatched[:5]}")
    loop_s = sample_s * args.cards / done
    print(f"seed loop   {sample_s:8.2f} s for {done:,} cards -> {loop_s:.2f} s scaled", flush=True)
    restore()

    runs = f"best of {args.rounds}: " if args.rounds > 1 else ""
    rows = [
        (
            "ours (chunked service)",
            ours_s,
            f"{runs}{', '.join(f'{t:.2f}' for t in times['ours'])} s; end state checked",
        ),
        (
            "seed-style per-card loop",
            loop_s,
            f"{done:,} cards in {sample_s:.2f} s, scaled; end state checked on them",
        ),
        (
            "one statement (limit)",
            limit_s,
            f"{runs}{', '.join(f'{t:.2f}' for t in times['limit'])} s; same end state",
        ),
    ]
    print()
    print(f"{'variant':<28}{'seconds':>10}{'cards/s':>12}  note")
    for name, seconds, note in rows:
        print(f"{name:<28}{seconds:>10.2f}{args.cards / seconds:>12,.0f}  {note}")
    vs_loop, vs_limit = loop_s / ours_s, ours_s / limit_s
    ok_loop, ok_limit = vs_loop >= TARGET_VS_LOOP, vs_limit <= TARGET_VS_LIMIT
    print()
    print(
        f"ours vs seed loop: {vs_loop:6.1f}x faster  (target >= {TARGET_VS_LOOP:g}x)  "
        f"{'PASS' if ok_loop else 'FAIL'}"
    )
    print(
        f"ours vs limit:     {vs_limit:6.2f}x slower  (target <= {TARGET_VS_LIMIT:g}x)  "
        f"{'PASS' if ok_limit else 'FAIL'}"
    )
    return 0 if ok_loop and ok_limit else 1


if __name__ == "__main__":
    sys.exit(main())
