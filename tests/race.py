"""Race tests that prove their race: processes held at a barrier in the database.

A race test starts its sides as real processes (`start_script`), holds row locks that
every side must take inside its critical section (`RowLocks`), waits until each side
is observed blocked on them (`wait_until_all_blocked`: PostgreSQL's own lock graph, no
fixed sleep), then lets them all go at once. A test whose sides ran one after the other
never sees them blocked together, and fails there.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

#: Names of the processes' sessions start with this (libpq's PGAPPNAME), so the test finds
#: them in pg_stat_activity among the queue's and other tests' sessions.
APP_PREFIX = "race-"


def start_script(script: str, *args: str, name: str) -> subprocess.Popen:
    """`python -c script args` with Django set up on the test database; session `race-<name>`."""
    s = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        "LOG_LEVEL": "WARNING",
        "PGAPPNAME": APP_PREFIX + name,
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=Path(settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class RowLocks:
    """Holds `SELECT … FOR UPDATE` on rows of `table` in a connection of its own until exit."""

    def __init__(self, table: str, ids: Iterable[int]) -> None:
        self.table, self.ids = table, sorted(ids)

    def __enter__(self) -> "RowLocks":
        s = connection.settings_dict
        self.conn = psycopg.connect(
            host=s["HOST"], port=s["PORT"], user=s["USER"], dbname=s["NAME"], autocommit=False
        )
        locked = self.conn.execute(
            f"SELECT id FROM {self.table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",  # noqa: S608
            [self.ids],
        ).fetchall()
        assert [row[0] for row in locked] == self.ids, f"{self.table} rows {self.ids} not all there"
        return self

    def __exit__(self, *exc) -> None:
        self.conn.commit()
        self.conn.close()


def blocked_sessions() -> set[str]:
    """The race processes (by name) whose session waits on a lock right now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT substr(application_name, %s) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE %s"
            "   AND cardinality(pg_blocking_pids(pid)) > 0",
            [len(APP_PREFIX) + 1, APP_PREFIX + "%"],
        )
        return {row[0] for row in cursor.fetchall()}


def wait_until_all_blocked(
    names: Sequence[str], procs: Sequence[subprocess.Popen], *, timeout_seconds: float = 60
) -> set[str]:
    """Return once every named process is blocked on a lock at the same moment.

    Fails when a process exits first (it never reached the barrier, or ran its whole
    critical section without meeting the other side) or when the time is up.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        blocked = blocked_sessions()
        if blocked >= set(names):
            return blocked
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    f"a race process ended before all were blocked together (blocked: "
                    f"{sorted(blocked)}); exit {proc.returncode}\n{out}\n{err}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"only {sorted(blocked)} of {sorted(names)} blocked together")
        time.sleep(0.02)


def results(procs: Sequence[subprocess.Popen], *, timeout_seconds: float = 120) -> list[str]:
    """The last stdout line of each process, once all have exited 0."""
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout_seconds)
        assert proc.returncode == 0, err
        lines.append(out.strip().splitlines()[-1])
    return lines
