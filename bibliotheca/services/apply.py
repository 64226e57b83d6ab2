"""Bibliographic apply: write Edition rows from item data; idempotent by data hash.

Import pages stage the new data of changed items as PendingEdition rows of a batch
(edition_row, staged_rows_sql); the batch's apply run moves them to Edition
(apply_staged). Runs queued before staging carry their items in their kwargs
(apply_bibliographic).
"""

from datetime import date
from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from bibliotheca.models import Edition, PendingEdition
from jobs.db import fetch_prepared

AUDIO_FORMATS = {"MP3"}


def apply_bibliographic(
    *, items: list[dict[str, Any]], fields: list[str] | None = None
) -> dict[str, int]:
    """items: [{"identifier_id", "data_hash", "values"}], values in `fields` order (or
    {"identifier_id", "data_hash", "data": {field: value}}, as queued before); rows
    already at that hash are left alone.

    Runs on the `apply` cluster. Delivered twice, or queued by two imports of the same
    data, it writes once: the second sees the stored hash and skips. One statement
    (`INSERT ... ON CONFLICT (identifier_id) DO UPDATE ... WHERE` the hash differs):
    concurrent applies of one identifier wait on its row, as FOR UPDATE made them.
    """
    latest = {item["identifier_id"]: item for item in items}  # the last one per identifier
    if not latest:
        return {"created": 0, "updated": 0, "unchanged": 0}
    rows = []
    for identifier_id, item in latest.items():
        if "data" in item:
            data = item["data"]
        elif fields is None:
            raise ValueError("items given as values need the run's `fields`")
        else:
            data = dict(zip(fields, item["values"], strict=True))
        rows.append(edition_row(item["data_hash"], data, identifier_id=identifier_id))
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), {"rows": Jsonb(rows), "now": timezone.now()})
        written = [created for (created,) in cursor]
    created = sum(1 for flag in written if flag)
    return {
        "created": created,
        "updated": len(written) - created,
        "unchanged": len(items) - len(written),
    }


def edition_row(data_hash: str, data: dict[str, str], **key: Any) -> dict[str, Any]:
    """An Edition's columns from item data, JSON-ready (staged or upserted as a
    recordset), with its `key`: identifier_id=..., or value=... (the item id) when the
    identifier is created by the statement that stages the row."""
    edition = edition_fields(data)
    published = edition["published"]
    edition["published"] = published.isoformat() if published else None
    return {**edition, **key, "data_hash": data_hash}


def apply_staged(batch: str) -> dict[str, int]:
    """Write the Edition rows staged for `batch`, taking them: one statement.

    The rows are deleted by the statement that writes them, so a second delivery (or a
    re-run) of the batch's run finds nothing left and writes nothing; a failed attempt
    rolls back and its retry finds them all. The last row staged per identifier wins;
    rows already at that hash are left alone.
    """
    ((taken, created, written),) = fetch_prepared(
        _apply_staged_sql(), {"batch": batch, "now": timezone.now()}
    )
    return {"created": created, "updated": written - created, "unchanged": taken - written}


@cache
def staged_rows_sql() -> str:
    """`INSERT INTO` PendingEdition `SELECT` the edition_row dicts (keyed by `value`) of
    the jsonb param `staged_rows`, for batch `batch`, joined to the identifiers of the
    caller's CTE `identifiers (id, value)`: for an import page's statement."""
    columns = _columns(PendingEdition)[1:]  # identifier_id comes from the join
    names = [f.column for f in columns]
    record = _recordset(columns)
    return f"""
        INSERT INTO {PendingEdition._meta.db_table} (batch, identifier_id, {", ".join(names)},
                                                      created_at)
        SELECT %(batch)s::uuid, ident.id, {", ".join(f"r.{name}" for name in names)}, %(now)s
        FROM jsonb_to_recordset(%(staged_rows)s) AS r(value varchar, {record})
        JOIN identifiers ident ON ident.value = r.value
    """


def _columns(model) -> list:
    return [model._meta.get_field(name) for name in ("identifier", *EDITION_FIELDS, "data_hash")]


def _recordset(columns: list) -> str:
    """`column type, ...`: a jsonb_to_recordset column list for `columns`."""
    return ", ".join(f"{f.column} {f.db_type(connection)}" for f in columns)


def _updated(names: list[str]) -> str:
    """The `DO UPDATE SET` of an Edition upsert: every column but identifier_id, and
    updated_at."""
    return ", ".join(f"{name} = EXCLUDED.{name}" for name in [*names[1:], "updated_at"])


@cache
def _apply_staged_sql() -> str:
    names = [f.column for f in _columns(Edition)]
    listed = ", ".join(names)
    edition = Edition._meta.db_table
    updated = _updated(names)
    return f"""
        WITH taken AS (
            DELETE FROM {PendingEdition._meta.db_table} WHERE batch = %(batch)s::uuid
            RETURNING id, {listed}
        ),
        latest AS (
            SELECT DISTINCT ON (identifier_id) * FROM taken ORDER BY identifier_id, id DESC
        ),
        written AS (
            INSERT INTO {edition} ({listed}, updated_at)
            SELECT {listed}, %(now)s FROM latest
            ON CONFLICT (identifier_id) DO UPDATE SET {updated}
            WHERE {edition}.data_hash IS DISTINCT FROM EXCLUDED.data_hash
            RETURNING xmax = 0 AS created
        )
        SELECT (SELECT count(*) FROM taken), count(*) FILTER (WHERE created), count(*)
        FROM written
    """


@cache
def _upsert_sql() -> str:
    meta = Edition._meta
    columns = _columns(Edition)
    names = [f.column for f in columns]
    record = _recordset(columns)
    updated = _updated(names)
    return f"""
        INSERT INTO {meta.db_table} ({", ".join(names)}, updated_at)
        SELECT {", ".join(f"r.{name}" for name in names)}, %(now)s
        FROM jsonb_to_recordset(%(rows)s) AS r({record})
        ON CONFLICT (identifier_id) DO UPDATE SET {updated}
        WHERE {meta.db_table}.data_hash IS DISTINCT FROM EXCLUDED.data_hash
        RETURNING xmax = 0
    """


EDITION_FIELDS = (
    "title",
    "subtitle",
    "authors",
    "narrator",
    "publisher",
    "language",
    "medium",
    "isbn",
    "published",
    "description",
    "cover_url",
    "link_url",
)


def edition_fields(data: dict[str, str]) -> dict[str, Any]:
    """Item XML fields -> Edition fields."""
    authors = [a.strip() for a in data.get("Authors", "").split(";") if a.strip()]
    medium = (
        Edition.Medium.AUDIOBOOK
        if data.get("BookFormat", "").upper() in AUDIO_FORMATS
        else Edition.Medium.EBOOK
    )
    return {
        "title": data.get("Title", "")[:500],
        "subtitle": data.get("SubTitle", "")[:500],
        "authors": authors,
        "narrator": data.get("Narrator", "")[:255],
        "publisher": data.get("Publisher", "")[:255],
        "language": data.get("Language", "")[:16],
        "medium": medium,
        "isbn": (data.get("ISBN13") or data.get("PhysicalISBN", ""))[:20],
        "published": _parse_date(data.get("PubDate", ""), data.get("PubYear", "")),
        "description": data.get("Description", ""),
        "cover_url": data.get("CoverLinkURL", "")[:1000],
        "link_url": data.get("BookLinkURL", "")[:1000],
    }


def _parse_date(value: str, year: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return date(int(year), 1, 1) if year.isdigit() else None
