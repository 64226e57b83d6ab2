"""Hand-written SQL of the commerce app, each statement named and described once.

The chunk statements lock their rows FOR UPDATE SKIP LOCKED and walk in key order from
the last row of the previous chunk, so two workers never take one row, and a row a chunk
leaves as it was (out of stock) is not selected again in the same run. They return
their notification rows (address, dedup key and the template's context) as JSON, which
commerce.services.notifications renders with the template engine and inserts into the
outbox in the chunk's transaction.
"""

#: The next delivery date of a row `d` with next_delivery_date, frequency and anchor_day:
#: +7 or +14 days, or the anchor day of next month (its last day when shorter: Jan 31,
#: Feb 28, Mar 31). Same rule as commerce.services.dates.next_delivery_date.
NEXT_DATE = """
CASE d.frequency
     WHEN 'weekly' THEN d.next_delivery_date + 7
     WHEN 'biweekly' THEN d.next_delivery_date + 14
     ELSE make_date(m.y, m.mo, least(
              coalesce(d.anchor_day, extract(day FROM d.next_delivery_date)::int),
              extract(day FROM make_date(m.y, m.mo, 1) + interval '1 month - 1 day')::int))
END"""

#: One chunk of due deliveries: lock the subscriptions (SKIP LOCKED), then their products
#: in id order (waiting for another worker's chunk: the stock it leaves is what we
#: allocate; same order everywhere, so no deadlock). Per product the stock goes to the
#: earliest deliveries first (a running sum); once one did not fit, no later delivery of
#: that product takes stock in this run (%(short_products)s, carried between chunks). Orders, their lines, the stock taken, the
#: dates moved on and the audit rows are this one statement; its notification rows (JSON)
#: go into the outbox in the same transaction: they commit together or not at all. A delivery whose order exists already (the webhook
#: made it) only has its date moved on; ON CONFLICT on the one-order-per-delivery key
#: is the last guard.
PROCESS_DUE_CHUNK = f"""
WITH picked AS (
    SELECT s.id, s.customer_id, s.product_id, s.quantity, s.frequency, s.next_delivery_date,
           s.anchor_day, s.price_per_delivery
      FROM commerce_subscription s
     WHERE s.status = 'active'
       AND s.next_delivery_date <= %(as_of)s
       AND (s.next_delivery_date, s.id) > (%(after_date)s::date, %(after_id)s::bigint)
       AND (%(subscription_ids)s::bigint[] IS NULL
            OR s.id = ANY(%(subscription_ids)s::bigint[]))
     ORDER BY s.next_delivery_date, s.id
     LIMIT %(limit)s
       FOR UPDATE OF s SKIP LOCKED
), stock AS (
    SELECT p.id, p.stock_quantity, p.name, p.sku
      FROM commerce_product p
     WHERE p.id = ANY(ARRAY(SELECT DISTINCT product_id FROM picked))
     ORDER BY p.id
       FOR UPDATE OF p
), due AS (
    SELECT d.*, EXISTS (SELECT 1 FROM commerce_order o
                         WHERE o.subscription_id = d.id
                           AND o.delivery_date = d.next_delivery_date) AS has_order,
           {NEXT_DATE} AS next_date
      FROM picked d
     CROSS JOIN LATERAL (
           SELECT (extract(year FROM d.next_delivery_date)::int * 12
                   + extract(month FROM d.next_delivery_date)::int) / 12 AS y,
                  (extract(year FROM d.next_delivery_date)::int * 12
                   + extract(month FROM d.next_delivery_date)::int) %% 12 + 1 AS mo) m
), alloc AS (
    SELECT d.*, st.name AS product_name,
           NOT d.has_order
           AND d.product_id <> ALL(%(short_products)s::bigint[])
           AND sum(CASE WHEN d.has_order THEN 0 ELSE d.quantity END)
               OVER (PARTITION BY d.product_id ORDER BY d.next_delivery_date, d.id)
               <= st.stock_quantity AS fits
      FROM due d JOIN stock st ON st.id = d.product_id
), ordered AS (
    INSERT INTO commerce_order
           (customer_id, status, subscription_id, delivery_date, subtotal, total,
            provider_payment_id, created_at)
    SELECT a.customer_id, 'pending', a.id, a.next_delivery_date, a.price_per_delivery,
           a.price_per_delivery, '', %(now)s
      FROM alloc a
     WHERE a.fits
    ON CONFLICT ON CONSTRAINT commerce_order_one_per_delivery DO NOTHING
    RETURNING id, subscription_id
), made AS (
    SELECT o.id AS order_id, a.*
      FROM ordered o JOIN alloc a ON a.id = o.subscription_id
), lines AS (
    INSERT INTO commerce_orderline (order_id, product_id, quantity, unit_price, line_total)
    SELECT m.order_id, m.product_id, m.quantity, round(m.price_per_delivery / m.quantity, 2),
           m.price_per_delivery
      FROM made m
), taken AS (
    UPDATE commerce_product p
       SET stock_quantity = p.stock_quantity - t.units
      FROM (SELECT product_id, sum(quantity) AS units FROM made GROUP BY product_id) t
     WHERE p.id = t.product_id
    RETURNING p.id
), advanced AS (
    UPDATE commerce_subscription s
       SET next_delivery_date = a.next_date, updated_at = %(now)s
      FROM alloc a
     WHERE s.id = a.id AND (a.fits OR a.has_order)
    RETURNING s.id
), audit AS (
    INSERT INTO commerce_auditlog (actor, action, object_ref, created_at, details)
    SELECT %(actor)s, 'order.created', 'order:' || m.order_id, %(now)s,
           jsonb_build_object('subscription_id', m.id, 'delivery_date', m.next_delivery_date,
                              'quantity', m.quantity, 'total', m.price_per_delivery)
      FROM made m
), notify_orders AS (
    SELECT c.channel, c.recipient,
           'order_confirmation:' || m.order_id || ':' || c.channel AS dedup_key,
           cu.name AS customer_name, m.order_id, m.product_name, m.quantity,
           m.price_per_delivery::text AS total,
           to_char(m.next_delivery_date, 'YYYY-MM-DD') AS delivery_date
      FROM made m
      JOIN commerce_customer cu ON cu.id = m.customer_id
     CROSS JOIN LATERAL (VALUES ('email', cu.email), ('sms', cu.phone)) c(channel, recipient)
     WHERE c.recipient <> ''
), notify_short AS (
    SELECT CASE WHEN cu.email <> '' THEN 'email' WHEN cu.phone <> '' THEN 'sms' END AS channel,
           CASE WHEN cu.email <> '' THEN cu.email ELSE cu.phone END AS recipient,
           'subscription_out_of_stock:' || a.id || ':'
               || to_char(a.next_delivery_date, 'YYYYMMDD') AS dedup_key,
           cu.name AS customer_name, a.product_name, a.quantity,
           to_char(a.next_delivery_date, 'YYYY-MM-DD') AS delivery_date
      FROM alloc a
      JOIN commerce_customer cu ON cu.id = a.customer_id
     WHERE NOT a.fits AND NOT a.has_order
)
SELECT (SELECT count(*) FROM picked),
       (SELECT count(*) FROM made),
       (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM alloc
         WHERE NOT fits AND NOT has_order),
       (SELECT count(*) FROM alloc WHERE has_order),
       (SELECT coalesce(array_agg(DISTINCT product_id), '{{}}') FROM alloc
         WHERE NOT fits AND NOT has_order),
       (SELECT count(*) FROM advanced),
       (SELECT next_delivery_date FROM picked ORDER BY next_delivery_date DESC, id DESC LIMIT 1),
       (SELECT id FROM picked ORDER BY next_delivery_date DESC, id DESC LIMIT 1),
       (SELECT json_agg(x) FROM notify_orders x),
       (SELECT json_agg(x) FROM notify_short x WHERE x.channel IS NOT NULL)
"""

#: Preview of a run: due deliveries and how many the stock covers (earliest first).
PREVIEW_DUE = """
SELECT count(*), count(*) FILTER (WHERE has_order),
       count(*) FILTER (WHERE NOT has_order AND NOT fits)
  FROM (SELECT EXISTS (SELECT 1 FROM commerce_order o WHERE o.subscription_id = s.id
                          AND o.delivery_date = s.next_delivery_date) AS has_order,
               sum(s.quantity) OVER (PARTITION BY s.product_id
                                     ORDER BY s.next_delivery_date, s.id)
                   <= p.stock_quantity AS fits
          FROM commerce_subscription s JOIN commerce_product p ON p.id = s.product_id
         WHERE s.status = 'active' AND s.next_delivery_date <= %(as_of)s
           AND (%(subscription_ids)s::bigint[] IS NULL
                OR s.id = ANY(%(subscription_ids)s::bigint[]))) d
"""

#: One chunk of renewal reminders: active subscriptions due on %(due_date)s, in id order
#: from %(after_id)s, with their notification rows (JSON); the dedup key (subscription,
#: delivery date) makes a second run queue nothing.
REMINDER_CHUNK = """
WITH chunk AS (
    SELECT s.id, s.quantity, s.price_per_delivery, s.next_delivery_date, p.name AS product_name,
           cu.name AS customer_name, cu.email
      FROM commerce_subscription s
      JOIN commerce_product p ON p.id = s.product_id
      JOIN commerce_customer cu ON cu.id = s.customer_id
     WHERE s.status = 'active' AND s.next_delivery_date = %(due_date)s AND s.id > %(after_id)s
     ORDER BY s.id
     LIMIT %(limit)s
), notify_reminders AS (
    SELECT CASE WHEN r.email <> '' THEN 'email' END AS channel, r.email AS recipient,
           'subscription_reminder:' || r.id || ':'
               || to_char(r.next_delivery_date, 'YYYYMMDD') AS dedup_key,
           r.customer_name, r.product_name, r.quantity, r.price_per_delivery::text AS amount,
           to_char(r.next_delivery_date, 'YYYY-MM-DD') AS delivery_date
      FROM chunk r
)
SELECT (SELECT count(*) FROM chunk), (SELECT max(id) FROM chunk),
       (SELECT json_agg(x) FROM notify_reminders x WHERE x.channel IS NOT NULL)
"""

#: One batch of expired carts with their lines: carts without lines when %(empty)s, else
#: the others; ids in order, SKIP LOCKED (a cart a customer is changing right now holds
#: a lock on it and is left for the next run). Lines and carts go in one statement.
DELETE_CARTS_BATCH = """
WITH doomed AS (
    SELECT c.id
      FROM commerce_cart c
     WHERE c.updated_at < %(cutoff)s
       AND EXISTS (SELECT 1 FROM commerce_cartline l WHERE l.cart_id = c.id) <> %(empty)s
     ORDER BY c.id
     LIMIT %(limit)s
       FOR UPDATE OF c SKIP LOCKED
), lines AS (
    DELETE FROM commerce_cartline l WHERE l.cart_id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING 1
), carts AS (
    DELETE FROM commerce_cart c WHERE c.id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING 1
)
SELECT (SELECT count(*) FROM carts), (SELECT count(*) FROM lines)
"""

#: One batch of tokens past use: expired, or used before %(used_before)s; counted per kind.
DELETE_TOKENS_BATCH = """
WITH doomed AS (
    SELECT t.id
      FROM commerce_expiringtoken t
     WHERE t.expires_at <= %(now)s OR t.used_at <= %(used_before)s
     ORDER BY t.id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM commerce_expiringtoken t WHERE t.id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING t.kind
)
SELECT kind, count(*) FROM gone GROUP BY kind
"""

#: One batch of audit rows older than %(cutoff)s, oldest first (created_at index).
DELETE_AUDIT_BATCH = """
DELETE FROM commerce_auditlog
 WHERE id = ANY(ARRAY(SELECT id FROM commerce_auditlog WHERE created_at < %(cutoff)s
                       ORDER BY created_at, id LIMIT %(limit)s))
"""
