"""The delivery-date rule as SQL functions (the one copy: the daily job, the charge path,
the admin and resume all call them) and the triggers that move Cart.updated_at on any
change to a cart or its lines, bulk writes included.

The functions are plain `LANGUAGE sql IMMUTABLE` expressions, so PostgreSQL inlines them
into the set-based statements that call them.
"""

from django.db import migrations

FUNCTIONS = """
-- The date of month index k (year * 12 + month - 1) on day `anchor`, or the month's last
-- day when it is shorter (anchor 31: Jan 31, Feb 28, Mar 31).
CREATE OR REPLACE FUNCTION commerce_month_date(k int, anchor int) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT make_date(k / 12, k % 12 + 1, least(anchor, extract(day FROM
           make_date(k / 12, k % 12 + 1, 1) + interval '1 month - 1 day')::int))
$$;

-- The delivery after d: +7 or +14 days, or next month on the anchor day.
CREATE OR REPLACE FUNCTION commerce_next_delivery(d date, frequency text, anchor_day int)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE frequency
       WHEN 'weekly' THEN d + 7
       WHEN 'biweekly' THEN d + 14
       WHEN 'monthly' THEN commerce_month_date(
           extract(year FROM d)::int * 12 + extract(month FROM d)::int,
           coalesce(anchor_day, extract(day FROM d)::int))
       END
$$;

-- The delivery to make as of `today` for a subscription whose next date is d (on or
-- before today): d itself when it is late by less than one period (its next date is after
-- today), else the last date of its schedule on or before today, which is late by less
-- than one period; the older missed ones are skipped, never made in bulk.
CREATE OR REPLACE FUNCTION commerce_due_delivery(
    d date, frequency text, anchor_day int, today date
) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
       WHEN commerce_next_delivery(d, frequency, anchor_day) > today THEN d
       WHEN frequency = 'weekly' THEN d + (today - d) / 7 * 7
       WHEN frequency = 'biweekly' THEN d + (today - d) / 14 * 14
       WHEN commerce_month_date(
                extract(year FROM today)::int * 12 + extract(month FROM today)::int - 1,
                coalesce(anchor_day, extract(day FROM d)::int)) <= today
       THEN commerce_month_date(
                extract(year FROM today)::int * 12 + extract(month FROM today)::int - 1,
                coalesce(anchor_day, extract(day FROM d)::int))
       ELSE commerce_month_date(
                extract(year FROM today)::int * 12 + extract(month FROM today)::int - 2,
                coalesce(anchor_day, extract(day FROM d)::int))
       END
$$;

-- How many deliveries of the schedule starting at d fall before t (those skipped when a
-- subscription moves from d to t).
CREATE OR REPLACE FUNCTION commerce_deliveries_between(
    d date, t date, frequency text, anchor_day int
) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
       WHEN t <= d THEN 0
       WHEN frequency = 'weekly' THEN (t - d + 6) / 7
       WHEN frequency = 'biweekly' THEN (t - d + 13) / 14
       ELSE (extract(year FROM t)::int * 12 + extract(month FROM t)::int)
            - (extract(year FROM d)::int * 12 + extract(month FROM d)::int)
            + CASE WHEN commerce_month_date(
                            extract(year FROM t)::int * 12 + extract(month FROM t)::int - 1,
                            coalesce(anchor_day, extract(day FROM d)::int)) < t
                   THEN 1 ELSE 0 END
       END
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS commerce_deliveries_between(date, date, text, int);
DROP FUNCTION IF EXISTS commerce_due_delivery(date, text, int, date);
DROP FUNCTION IF EXISTS commerce_next_delivery(date, text, int);
DROP FUNCTION IF EXISTS commerce_month_date(int, int);
"""

CART_TRIGGERS = """
-- An UPDATE of a cart that does not set updated_at itself moves it to now.
CREATE OR REPLACE FUNCTION commerce_cart_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER commerce_cart_touch BEFORE UPDATE ON commerce_cart
    FOR EACH ROW EXECUTE FUNCTION commerce_cart_touch();

-- Lines written by a statement (one row or a bulk write) move their carts, once per
-- statement. A cart deleted by the same statement is simply not found.
CREATE OR REPLACE FUNCTION commerce_cart_lines_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE commerce_cart c SET updated_at = now()
     WHERE c.id IN (SELECT DISTINCT cart_id FROM changed_lines);
    RETURN NULL;
END $$;

CREATE TRIGGER commerce_cart_lines_inserted AFTER INSERT ON commerce_cartline
    REFERENCING NEW TABLE AS changed_lines
    FOR EACH STATEMENT EXECUTE FUNCTION commerce_cart_lines_touch();
CREATE TRIGGER commerce_cart_lines_updated AFTER UPDATE ON commerce_cartline
    REFERENCING NEW TABLE AS changed_lines
    FOR EACH STATEMENT EXECUTE FUNCTION commerce_cart_lines_touch();
CREATE TRIGGER commerce_cart_lines_deleted AFTER DELETE ON commerce_cartline
    REFERENCING OLD TABLE AS changed_lines
    FOR EACH STATEMENT EXECUTE FUNCTION commerce_cart_lines_touch();
"""

DROP_CART_TRIGGERS = """
DROP TRIGGER IF EXISTS commerce_cart_lines_deleted ON commerce_cartline;
DROP TRIGGER IF EXISTS commerce_cart_lines_updated ON commerce_cartline;
DROP TRIGGER IF EXISTS commerce_cart_lines_inserted ON commerce_cartline;
DROP FUNCTION IF EXISTS commerce_cart_lines_touch();
DROP TRIGGER IF EXISTS commerce_cart_touch ON commerce_cart;
DROP FUNCTION IF EXISTS commerce_cart_touch();
"""


class Migration(migrations.Migration):
    dependencies = [("commerce", "0002_lifecycle_dates_carts")]

    operations = [
        migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
        migrations.RunSQL(CART_TRIGGERS, DROP_CART_TRIGGERS),
    ]
