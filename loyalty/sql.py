"""Hand-written SQL of the loyalty app, each statement named and described once.

A chunk of the expiration job is two statements in one transaction: a PICK locks the
chunk's cards (FOR UPDATE SKIP LOCKED: two workers never touch one card) and returns
them with what their customer needs to hear; MARK_WARNED or EXPIRE_CARDS then changes
exactly those cards by primary key. Both picks walk one merchant's cards in
(last_activity_at, id) order from the previous chunk's last card, a range read of
`loyalty_card_expirable_idx`: no sort, and no rows read past the phase's threshold.
"""

#: Run first in every chunk's transaction: the picks must walk the index in its order. The
#: planner cannot estimate `expiration_warning_cycle_at = last_activity_at` (two columns:
#: it assumes 0.5 % of rows match where nearly all do), so it would read and sort the
#: whole range for each chunk (0.9 s per chunk at 200,000 cards instead of a range read).
WALK_IN_INDEX_ORDER = "SET LOCAL enable_sort = off"

#: The columns of a pick, in loyalty.services.notifications.CardRow order.
_PICKED_COLUMNS = """
    SELECT c.id, c.number, c.points_balance, c.last_activity_at, cu.name, cu.email, cu.phone,
           c.points_expire_on
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

#: A card's due day in its merchant's calendar (loyalty.selectors states the rule).
_DUE_ON = "((c.last_activity_at AT TIME ZONE %(zone)s)::date + %(days)s::int)"

#: Lock the next chunk of cards within the lead of their due day (or past it) that have no
#: warning for their current cycle (or one promising a day before the due day).
PICK_FOR_WARNING = (
    _PICKED_COLUMNS
    + f"""
       AND c.last_activity_at < %(warn_before)s
       AND (c.expiration_warning_cycle_at IS DISTINCT FROM c.last_activity_at
            OR c.points_expire_on IS NULL
            OR c.points_expire_on < {_DUE_ON})"""
    + _WALK
)

#: Lock the next chunk of cards past their due day whose warning for the current cycle
#: promised a day that has come (so the warning is at least the lead old).
PICK_FOR_EXPIRATION = (
    _PICKED_COLUMNS
    + f"""
       AND c.last_activity_at < %(expire_before)s
       AND c.expiration_warning_cycle_at = c.last_activity_at
       AND c.points_expire_on <= %(today)s
       AND c.points_expire_on >= {_DUE_ON}"""
    + _WALK
)

#: Mark the picked cards warned for their current cycle, each with the day its warning
#: promised (`ids` and `expire_on` are parallel arrays).
MARK_WARNED = """
UPDATE loyalty_loyaltycard c
   SET last_expiration_warning_at = %(now)s,
       expiration_warning_cycle_at = c.last_activity_at,
       points_expire_on = p.expire_on
  FROM unnest(%(ids)s::bigint[], %(expire_on)s::date[]) AS p(id, expire_on)
 WHERE c.id = p.id
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
