"""Hand-written SQL of the loyalty app, each statement named and described once.

Both chunk statements lock with FOR UPDATE SKIP LOCKED and walk one merchant's cards
in (last_activity_at, id) order from the last card of the previous chunk (`after_at`,
`after_id`), so two workers never touch one card, a chunk that cannot finish never makes
the loop select it again, and each chunk reads exactly its cards from
`loyalty_card_expirable_idx` (merchant, last_activity_at, id) WHERE is_active AND
points_balance > 0: no sort, no filtered rows, however many cards are not due.

Each chunk statement comes in two forms. `..._WITH_OUTBOX` (the normal one) also writes
the chunk's notifications, rendered in SQL from the templates by
jobs.services.outbox.outbox_insert_sql into the `outbox` CTE, so the rows never leave
the server, and returns the chunk's counts and walk position. The plain form returns
the rows, for templates only the engine can render (loyalty.services.expiration).
"""


def with_outbox(statement: str, outbox_insert: str) -> str:
    """`statement` with its `outbox` CTE filled in by `outbox_insert_sql`'s INSERT."""
    return statement.replace("__OUTBOX_INSERT__", outbox_insert)


#: Closes the `chunk` CTE and returns its rows in walk order (the plain statements).
_CHUNK_ROWS = """)
SELECT id, number, points, last_activity_at, name, email, phone
  FROM chunk
 ORDER BY last_activity_at, id
"""


def _notify_and_outbox(kind: str, extra_columns: str = "") -> str:
    """The `notify` and `outbox` CTEs and the summary row, over the open `chunk` CTE.

    `notify` has who to tell and how (the columns `outbox_insert_sql` reads) and the
    dedup key of loyalty.services.notifications: the card and its inactivity cycle. The
    summary: cards, new notifications, points, and the walk position (last card).
    """
    return f"""
), notify AS (
    SELECT CASE WHEN r.email <> '' THEN 'email' WHEN r.phone <> '' THEN 'sms' END AS channel,
           CASE WHEN r.email <> '' THEN r.email ELSE r.phone END AS recipient,
           '{kind}:' || r.id || ':'
               || to_char(r.last_activity_at AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS')
               AS dedup_key,
           r.name AS customer_name, r.number AS card_number, r.points{extra_columns}
      FROM chunk r
), outbox AS (__OUTBOX_INSERT__
)
SELECT count(*), (SELECT count(*) FROM outbox), coalesce(sum(points), 0),
       (array_agg(last_activity_at ORDER BY last_activity_at DESC, id DESC))[1],
       (array_agg(id ORDER BY last_activity_at DESC, id DESC))[1]
  FROM chunk
"""


#: Mark one chunk of cards due for the 14-day warning as warned; returns what to notify.
#: Same access path as EXPIRE_CHUNK (index walk, customer by nested loop, update by key).
_WARN_CTES = """
WITH picked AS (
    SELECT c.id, cu.name, cu.email, cu.phone
      FROM loyalty_loyaltycard c
      JOIN loyalty_customer cu ON cu.id = c.customer_id
     WHERE c.merchant_id = %(merchant_id)s
       AND c.is_active AND c.points_balance > 0
       AND c.last_activity_at < %(warning_threshold)s
       AND c.last_activity_at >= %(expiration_threshold)s
       AND (c.last_expiration_warning_at IS NULL
            OR c.last_expiration_warning_at < c.last_activity_at)
       AND (c.last_activity_at, c.id)
           > (COALESCE(%(after_at)s, '-infinity'::timestamptz), %(after_id)s)
       AND (%(card_ids)s::bigint[] IS NULL OR c.id = ANY(%(card_ids)s::bigint[]))
     ORDER BY c.last_activity_at, c.id
     LIMIT %(limit)s
       FOR UPDATE OF c SKIP LOCKED
), warned AS (
    UPDATE loyalty_loyaltycard c
       SET last_expiration_warning_at = %(now)s
     WHERE c.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING c.id, c.number, c.points_balance, c.last_activity_at
), chunk AS (
    SELECT w.id, w.number, w.points_balance AS points, w.last_activity_at,
           p.name, p.email, p.phone
      FROM warned w JOIN picked p ON p.id = w.id
"""

WARN_CHUNK = _WARN_CTES + _CHUNK_ROWS

#: The warning's expiry date and whole days left as loyalty.services.notifications
#: computes them (UTC date; timedelta.days floors), from %(expiration_days)s and %(now)s.
WARN_CHUNK_WITH_OUTBOX = _WARN_CTES + _notify_and_outbox(
    "points_expiring",
    """,
           to_char((r.last_activity_at + make_interval(hours => 24 * %(expiration_days)s))
                   AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS expiration_date,
           greatest(0, floor(extract(epoch FROM r.last_activity_at
                    + make_interval(hours => 24 * %(expiration_days)s) - %(now)s) / 86400)
           )::int AS days_remaining""",
)

#: Expire one chunk: lock, zero the balance, write the POINTS_EXPIRED ledger rows, in one statement.
#: The customer is read with the locked card (nested loop under the LIMIT); the update finds
#: the locked cards through the primary key (`= ANY(ARRAY(...))`: never a hash join over the
#: whole table, whatever the planner thinks of random reads). `picked` holds the version
#: each card was locked in, the one the update changes, so its balance is the one expired.
_EXPIRE_CTES = """
WITH picked AS (
    SELECT c.id, c.points_balance, cu.name, cu.email, cu.phone
      FROM loyalty_loyaltycard c
      JOIN loyalty_customer cu ON cu.id = c.customer_id
     WHERE c.merchant_id = %(merchant_id)s
       AND c.is_active AND c.points_balance > 0
       AND c.last_activity_at < %(expiration_threshold)s
       AND (c.last_activity_at, c.id)
           > (COALESCE(%(after_at)s, '-infinity'::timestamptz), %(after_id)s)
       AND (%(card_ids)s::bigint[] IS NULL OR c.id = ANY(%(card_ids)s::bigint[]))
     ORDER BY c.last_activity_at, c.id
     LIMIT %(limit)s
       FOR UPDATE OF c SKIP LOCKED
), expired AS (
    UPDATE loyalty_loyaltycard c
       SET points_balance = 0,
           total_points_voided = c.total_points_voided + c.points_balance
     WHERE c.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING c.id, c.stamp_count, c.number, c.last_activity_at
), chunk AS (
    SELECT e.id, e.stamp_count, e.number, e.last_activity_at, p.points_balance AS points,
           p.name, p.email, p.phone
      FROM expired e JOIN picked p ON p.id = e.id
), ledger AS (
    INSERT INTO loyalty_loyaltytransaction
           (card_id, merchant_id, store_id, transaction_type, points_delta,
            points_balance_after, stamps_delta, stamps_balance_after, notes, transaction_at)
    SELECT r.id, %(merchant_id)s, NULL, 'points_expired', -r.points, 0, 0, r.stamp_count,
           %(notes)s, %(now)s
      FROM chunk r
"""

EXPIRE_CHUNK = _EXPIRE_CTES + _CHUNK_ROWS

EXPIRE_CHUNK_WITH_OUTBOX = _EXPIRE_CTES + _notify_and_outbox("points_expired")
