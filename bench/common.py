"""What every benchmark needs: its own database on the project's server, and Django."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit


def bench_database_url(url: str, *, suffix: str) -> str:
    """The same server and credentials, database `<name>_<suffix>`: never the dev data."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "jobs"
    if not name.endswith(f"_{suffix}"):
        name = f"{name}_{suffix}"
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(url: str) -> None:
    """Create the database of `url` when it does not exist."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _no_database(message: str) -> NoReturn:
    raise SystemExit(message)


def own_database(suffix: str, *, error: Callable[[str], NoReturn] = _no_database) -> str:
    """The benchmark's own database (created when missing) on the project's server:
    $DATABASE_URL, else the one `make setup` wrote to .run/database_url."""
    source = os.environ.get("DATABASE_URL")
    written = Path(__file__).resolve().parent.parent / ".run" / "database_url"
    if not source and written.exists():
        source = written.read_text().strip()
    if not source:
        error("DATABASE_URL is not set")
    url = bench_database_url(source, suffix=suffix)
    ensure_database(url)
    return url


def setup_django(url: str, *, quiet_logs: bool = True) -> None:
    """Point Django at `url`, set it up and migrate (a no-op once migrated)."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if quiet_logs:
        os.environ.setdefault("LOG_LEVEL", "WARNING")  # no log line per chunk in the timings
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def send_one(item) -> bool:
    """What a source design does per message: render it and write one row, one INSERT.

    The "seed" variants (the source designs' shapes, docs/sources.md) call this, not
    jobs.outbox.notifications.queue_notification (which stages rows for COPY, the shape for
    batches): the baseline pays for one statement per message, as those designs do, and
    leaves the same outbox row as our batch path.
    """
    from django.db import connection
    from django.utils import timezone

    from jobs.outbox.notifications import render_notification
    from jobs.runs.retry import DEFAULT_RETRY

    subject, body = render_notification(item)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_notification (channel, recipient, template, subject, body,"
            " dedup_key, status, attempts, max_attempts, next_attempt_at, last_error,"
            " created_at, requeued_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'pending', 0, %s, %s, '', %s, '')"
            " ON CONFLICT (dedup_key) DO NOTHING",
            [
                item.channel,
                item.recipient,
                item.template,
                subject,
                body,
                item.dedup_key,
                DEFAULT_RETRY.max_attempts,
                now,
                now,
            ],
        )
        return cursor.rowcount == 1


def execute(statement: str, params=None):
    """One statement on Django's connection: its rows, or its row count (`%%` for a literal
    `%`: the statement always goes through parameter substitution)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(statement, params if params is not None else [])
        return cur.fetchall() if cur.description else cur.rowcount
