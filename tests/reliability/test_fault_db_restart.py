"""The database restarts in the middle of a run: the run fails cleanly, the next one succeeds.

Runs on a private PostgreSQL server (tests/reliability/throwaway_pg.py), never the shared one.
The job is `manage.py run_job loyalty.expire_points` (100,000 due cards) in a subprocess;
the server is stopped with `pg_ctl -m fast` (every connection cut) while chunks commit,
stays down 3 s and comes back.

Slow (about 25 s: a private PostgreSQL server is created, then stopped and started): `make
test-slow`.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.reliability.conftest import say
from tests.reliability.throwaway_pg import ThrowawayPostgres

pytestmark = pytest.mark.slow
CARDS = 100_000

SEED = """
import django
django.setup()
from tests.reliability.conftest import seed_due_cards
seed_due_cards(int(__import__('sys').argv[1]))
"""


def manage(url: str, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=Path(settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def query(url: str, sql: str):
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def interrupted(django_db_blocker):
    """A private server, migrated and seeded; one run interrupted by a restart."""
    pg = ThrowawayPostgres().init()
    url = pg.url
    started = time.monotonic()
    for args in (["manage.py", "migrate", "--noinput", "-v", "0"], ["-c", SEED, str(CARDS)]):
        out, err = manage(url, *args).communicate(timeout=300)
        assert "Traceback" not in err, err
    say(
        f"private PostgreSQL on port {pg.port}: migrated, {CARDS:,} due cards seeded "
        f"in {time.monotonic() - started:.1f} s"
    )
    first = manage(url, "manage.py", "run_job", "loyalty.expire_points")
    deadline = time.monotonic() + 120
    expired = 0
    while time.monotonic() < deadline and first.poll() is None:
        expired = query(url, EXPIRED_ROWS)[0][0]
        if expired >= 10_000:
            break
        time.sleep(0.05)
    assert first.poll() is None, "the run finished before the restart"
    outage = pg.restart(down_seconds=3)
    out, err = first.communicate(timeout=120)
    say(
        f"restarted the server (down {outage:.1f} s) with {expired:,}/{CARDS:,} cards expired; "
        f"run_job exit {first.returncode}: {out.strip().splitlines()[-1][:100]}"
    )
    yield {"url": url, "returncode": first.returncode, "started": started}
    pg.destroy()


EXPIRED_ROWS = (
    "SELECT count(*) FROM loyalty_loyaltytransaction WHERE transaction_type = 'points_expired'"
)


def run_rows(url: str):
    return query(
        url,
        "SELECT id, status, left(coalesce(error, ''), 60) FROM jobs_jobrun"
        " WHERE job = 'loyalty.expire_points' ORDER BY id",
    )


def test_database_restart__interrupted_run_recorded_failed_and_lease_released(interrupted):
    url = interrupted["url"]
    runs = run_rows(url)
    leases = query(url, "SELECT key, owner FROM jobs_lease WHERE expires_at > now()")
    say(f"after the restart: runs {runs}, live leases {leases}")
    assert interrupted["returncode"] == 1
    assert runs[0][1] == "failed", "the interrupted run must be recorded failed, not running"
    assert "job:loyalty.expire_points" not in [key for key, _ in leases], "lease left behind"


def test_database_restart__next_run_succeeds_and_nothing_expires_twice(interrupted):
    url = interrupted["url"]
    assert interrupted["returncode"] == 1, "run_job must exit non-zero when the database goes away"
    right_away = manage(url, "manage.py", "run_job", "loyalty.expire_points")
    out, err = right_away.communicate(timeout=300)
    first_try = out.strip().splitlines()[-1][:120] if out.strip() else err[-300:]
    # The interrupted run released its lease once the database was back: no waiting.
    assert right_away.returncode == 0 and "succeeded" in first_try, first_try
    (cards_expired, rows, distinct, violations) = query(
        url,
        """
        SELECT (SELECT count(*) FROM loyalty_loyaltycard WHERE points_balance = 0),
               (SELECT count(*) FROM loyalty_loyaltytransaction
                 WHERE transaction_type = 'points_expired'),
               (SELECT count(DISTINCT card_id) FROM loyalty_loyaltytransaction
                 WHERE transaction_type = 'points_expired'),
               (SELECT count(*) FROM (SELECT c.id FROM loyalty_loyaltycard c
                  JOIN loyalty_loyaltytransaction t ON t.card_id = c.id
                 GROUP BY c.id HAVING c.points_balance <> SUM(t.points_delta)) v)
        """,
    )[0]
    assert (cards_expired, rows, distinct, violations) == (CARDS, CARDS, CARDS, 0)
    say(
        f"next run right away: {first_try}; after the lease: {out.strip().splitlines()[-1][:140]}; "
        f"runs {run_rows(url)}; verified: {rows:,} POINTS_EXPIRED rows on {distinct:,} distinct "
        f"cards, 0 ledger violations; {time.monotonic() - interrupted['started']:.1f} s"
    )
