"""What every benchmark needs: its own database on the project's server, and Django."""

import os
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


def setup_django(url: str, *, quiet_logs: bool = True) -> None:
    """Point Django at `url`, set it up and migrate (a no-op once migrated)."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Benchmarks talk to local simulators over plain http (bibliotheca's address check).
    os.environ.setdefault("BIBLIOTHECA_ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("BIBLIOTHECA_ALLOW_HTTP", "1")
    if quiet_logs:
        os.environ.setdefault("LOG_LEVEL", "WARNING")  # no log line per chunk in the timings
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
