"""Hand-written SQL of the loyalty app, each statement named and described once.

Both chunk statements lock with FOR UPDATE SKIP LOCKED and walk one merchant's cards
in (last_activity_at, id) order from the last card of the previous chunk (`after_at`,
`after_id`), so two workers never touch one card, a chunk that cannot finish never makes
the loop select it again, and each chunk reads exactly its cards from
`loyalty_card_expirable_idx` (merchant, last_activity_at, id) WHERE is_active AND
points_balance > 0: no sort, no filtered rows, however many cards are not due.

Both return the chunk's cards with what their customer needs to hear, in walk order
(loyalty.services.notifications.CardRow); the caller queues their notifications in the
chunk's transaction (loyalty.services.expiration).
"""

#: The cards of one merchant past `after`, in walk order, locked; the caller's WHERE comes first.
_WALK = """
       AND (c.last_activity_at, c.id)
           > (COALESCE(%(after_at)s, '-infinity'::timestamptz), %(after_id)s)
       AND (%(card_ids)s::bigint[] IS NULL OR c.id = ANY(%(card_ids)s::bigint[]))
     ORDER BY c.last_activity_at, c.id
     LIMIT %(limit)s
       FOR UPDATE OF c SKIP LOCKED
"""

#: Closes the `chunk` CTE and returns its rows in walk order.
_CHUNK_ROWS = """)
SELECT id, number, points, last_activity_at, name, email, phone
  FROM chunk
 ORDER BY last_activity_at, id
"""

#: Mark one chunk of cards due for the 14-day warning as warned; returns whom to notify.
#: Same access path as EXPIRE_CHUNK (index walk, customer by nested loop, update by key).
WARN_CHUNK = (
    """
WITH picked AS (
    SELECT c.id, cu.name, cu.email, cu.phone
      FROM loyalty_loyaltycard c
      JOIN loyalty_customer cu ON cu.id = c.customer_id
     WHERE c.merchant_id = %(merchant_id)s
       AND c.is_active AND c.points_balance > 0
       AND c.last_activity_at < %(warning_threshold)s
       AND c.last_activity_at >= %(expiration_threshold)s
       AND (c.last_expiration_warning_at IS NULL
            OR c.last_expiration_warning_at < c.last_activity_at)"""
    + _WALK
    + """), warned AS (
    UPDATE loyalty_loyaltycard c
       SET last_expiration_warning_at = %(now)s
     WHERE c.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING c.id, c.number, c.points_balance, c.last_activity_at
), chunk AS (
    SELECT w.id, w.number, w.points_balance AS points, w.last_activity_at,
           p.name, p.email, p.phone
      FROM warned w JOIN picked p ON p.id = w.id
"""
    + _CHUNK_ROWS
)

#: Expire one chunk: lock, zero the balance, write the POINTS_EXPIRED ledger rows, in one statement.
#: The customer is read with the locked card (nested loop under the LIMIT); the update finds
#: the locked cards through the primary key (`= ANY(ARRAY(...))`: never a hash join over the
#: whole table, whatever the planner thinks of random reads). `picked` holds the version
#: each card was locked in, the one the update changes, so its balance is the one expired.
EXPIRE_CHUNK = (
    """
WITH picked AS (
    SELECT c.id, c.points_balance, cu.name, cu.email, cu.phone
      FROM loyalty_loyaltycard c
      JOIN loyalty_customer cu ON cu.id = c.customer_id
     WHERE c.merchant_id = %(merchant_id)s
       AND c.is_active AND c.points_balance > 0
       AND c.last_activity_at < %(expiration_threshold)s"""
    + _WALK
    + """), expired AS (
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
    + _CHUNK_ROWS
)
