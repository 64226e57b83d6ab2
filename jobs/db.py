"""Database helpers shared by the apps' hot statements."""

from typing import Any

import psycopg
from django.db import connection


def fetch_prepared(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run `sql` on Django's connection as a server-side prepared statement; its rows.

    For a statement one connection runs many times (an import page, an apply batch):
    PostgreSQL plans it once per connection instead of at every call (Django binds
    parameters client-side, so every call is a new text to plan; an import page's
    statement spent a quarter of its time in the planner). The plan is the generic
    one (plan_cache_mode), planned once: meant for statements that look rows up
    through unique indexes, whatever the values. Parameters are sent typed, so text
    going into a non-text column needs an explicit cast (`%(batch)s::uuid`).
    Runs in the connection's current transaction, or autocommits as Django does;
    errors are Django's (django.db.DatabaseError and its kinds), as from its cursors.
    """
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        if raw.prepare_threshold is None:
            # Django turns psycopg's prepared statements off (prepare_threshold None),
            # and with them prepare=True. Its own cursors bind client-side and are
            # never prepared; a threshold out of reach prepares only what asks for it.
            raw.prepare_threshold = 2**31 - 1
            # Only prepared statements are affected (Django's own are not prepared).
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description else []
