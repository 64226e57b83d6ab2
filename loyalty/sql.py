"""Hand-written SQL of the loyalty app, each statement named and described once.

A chunk of the expiration job is two statements in one transaction: a PICK locks the
chunk's cards and returns them with what their customer needs to hear; the matching
change (MARK_WARNED, EXPIRE_CARDS) then changes exactly those cards by primary key,
while the caller renders their notifications (loyalty.services.expiration). The cards
are locked by the chunk's own transaction from the pick on, so the change finds them as
the pick returned them.

Both picks lock with FOR UPDATE SKIP LOCKED and walk one merchant's cards in
(last_activity_at, id) order from the last card of the previous chunk (`after_at`,
`after_id`), so two workers never touch one card, a chunk that cannot finish never makes
the loop select it again, and each chunk reads exactly its cards from
`loyalty_card_expirable_idx` (merchant, last_activity_at, id) WHERE is_active AND
points_balance > 0: no sort, no filtered rows, however many cards are not due. The
customer is read with each card (nested loop under the LIMIT).
"""

#: The columns of a pick, in loyalty.services.notifications.CardRow order.
_PICKED_COLUMNS = """
    SELECT c.id, c.number, c.points_balance, c.last_activity_at, cu.name, cu.email, cu.phone
      FROM loyalty_loyaltycard c
      JOIN loyalty_customer cu ON cu.id = c.customer_id
     WHERE c.merchant_id = %(merchant_id)s
       AND c.is_active AND c.points_balance > 0
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

#: Lock the next chunk of cards due for the 14-day warning (not warned in this inactivity cycle).
PICK_FOR_WARNING = (
    _PICKED_COLUMNS
    + """
       AND c.last_activity_at < %(warning_threshold)s
       AND c.last_activity_at >= %(expiration_threshold)s
       AND (c.last_expiration_warning_at IS NULL
            OR c.last_expiration_warning_at < c.last_activity_at)"""
    + _WALK
)

#: Lock the next chunk of cards due for expiration.
PICK_FOR_EXPIRATION = (
    _PICKED_COLUMNS
    + """
       AND c.last_activity_at < %(expiration_threshold)s"""
    + _WALK
)

#: Mark the picked cards as warned in this cycle.
MARK_WARNED = """
UPDATE loyalty_loyaltycard
   SET last_expiration_warning_at = %(now)s
 WHERE id = ANY(%(ids)s::bigint[])
"""

#: Expire the picked cards: balance to 0, the points added to total_points_voided, and a
#: POINTS_EXPIRED ledger row each for the points the pick returned (`ids` and `points` are
#: parallel arrays; the lock guarantees they are still the cards' balances).
EXPIRE_CARDS = """
WITH picked AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(points)s::bigint[]) AS p(id, points)
), expired AS (
    UPDATE loyalty_loyaltycard c
       SET points_balance = 0,
           total_points_voided = c.total_points_voided + c.points_balance
     WHERE c.id = ANY(%(ids)s::bigint[])
    RETURNING c.id, c.stamp_count
)
INSERT INTO loyalty_loyaltytransaction
       (card_id, merchant_id, store_id, transaction_type, points_delta,
        points_balance_after, stamps_delta, stamps_balance_after, notes, transaction_at)
SELECT e.id, %(merchant_id)s, NULL, 'points_expired', -p.points, 0, 0, e.stamp_count,
       %(notes)s, %(now)s
  FROM expired e JOIN picked p ON p.id = e.id
"""
