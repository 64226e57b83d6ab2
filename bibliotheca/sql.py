"""The import's SQL that the ORM cannot say in one statement, run on Django's connection.

Each id is probed through its table's unique index (LATERAL ... LIMIT 1): without
statistics (a first import) the planner otherwise filtered every identifier or pool
of the collection for `value = ANY(...)`, once per page (a backfill went quadratic).
"""

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from jobs.sql import fetch

#: Edition columns an apply writes (PendingEdition has the same ones), and their types.
EDITION_COLUMNS = {
    "identifier_id": "bigint",
    "title": "varchar",
    "subtitle": "varchar",
    "authors": "jsonb",
    "narrator": "varchar",
    "publisher": "varchar",
    "language": "varchar",
    "medium": "varchar",
    "isbn": "varchar",
    "published": "date",
    "description": "text",
    "cover_url": "varchar",
    "link_url": "varchar",
    "data_hash": "varchar",
}

# Due: no identifier or pool yet; or a record whose MARC hash differs from the pool's
# (an empty stored hash is unknown, not changed); or metadata unchecked or older than
# the cutoff, unless the partner left the item out of its answer (missing: skipped
# until its record changes).
_DUE = """
SELECT input.value, e.data_hash
FROM (SELECT DISTINCT ON (value) value, hash
      FROM unnest(%(values)s::varchar[], %(hashes)s::varchar[]) AS r(value, hash)) input
LEFT JOIN LATERAL (
    SELECT id FROM bibliotheca_identifier WHERE type = %(type)s AND value = input.value LIMIT 1
) i ON true
LEFT JOIN LATERAL (
    SELECT 1 AS fresh FROM bibliotheca_licensepool
    WHERE collection_id = %(collection)s AND identifier_id = i.id
      AND (marc_hash = '' OR marc_hash = input.hash)
      AND (metadata_checked_at >= %(cutoff)s OR item_missing_since IS NOT NULL)
    LIMIT 1
) f ON true
LEFT JOIN LATERAL (
    SELECT data_hash FROM bibliotheca_edition WHERE identifier_id = i.id LIMIT 1
) e ON true
WHERE f.fresh IS NULL
"""

_IDENTIFIERS = """
SELECT i.value, i.id FROM unnest(%(values)s::varchar[]) AS input(value)
JOIN LATERAL (
    SELECT id, value FROM bibliotheca_identifier WHERE type = %(type)s AND value = input.value
    LIMIT 1
) i ON true
"""

# The inserted rows and the ones already there (one snapshot: the second part does not
# see the first's rows, so none is listed twice).
_ENSURE_IDENTIFIERS = f"""
WITH new AS (
    INSERT INTO bibliotheca_identifier (type, value)
    SELECT DISTINCT %(type)s, unnest(%(values)s::varchar[])
    ON CONFLICT (type, value) DO NOTHING
    RETURNING value, id
)
SELECT value, id FROM new UNION ALL {_IDENTIFIERS}
"""

# New pools are created stamped when looked up (or found missing); existing ones are
# stamped then, and take the record's MARC hash when it changed (others are not touched).
_POOLS = """
INSERT INTO bibliotheca_licensepool
    (collection_id, identifier_id, created_at, metadata_checked_at, marc_hash,
     item_missing_since)
SELECT %(collection)s, r.id, %(now)s,
       CASE WHEN r.id = ANY(%(stamped)s::bigint[]) OR r.id = ANY(%(missing)s::bigint[])
            THEN %(now)s::timestamptz END,
       r.hash,
       CASE WHEN r.id = ANY(%(missing)s::bigint[]) THEN %(now)s::timestamptz END
FROM unnest(%(ids)s::bigint[], %(hashes)s::varchar[]) AS r(id, hash)
ON CONFLICT (collection_id, identifier_id) DO UPDATE
    SET metadata_checked_at = COALESCE(EXCLUDED.metadata_checked_at,
                                       bibliotheca_licensepool.metadata_checked_at),
        item_missing_since = CASE
            WHEN EXCLUDED.metadata_checked_at IS NULL
                THEN bibliotheca_licensepool.item_missing_since
            WHEN EXCLUDED.item_missing_since IS NULL THEN NULL
            ELSE COALESCE(bibliotheca_licensepool.item_missing_since,
                          EXCLUDED.item_missing_since) END,
        marc_hash = EXCLUDED.marc_hash
    WHERE EXCLUDED.metadata_checked_at IS NOT NULL
       OR bibliotheca_licensepool.marc_hash IS DISTINCT FROM EXCLUDED.marc_hash
RETURNING xmax = 0
"""

_LISTED = ", ".join(EDITION_COLUMNS)
_UPDATED = ", ".join(f"{c} = EXCLUDED.{c}" for c in [*list(EDITION_COLUMNS)[1:], "updated_at"])

# One parameter for a page's rows: binding 15 columns x 50 rows took 10-25 ms a page.
# A title already staged at the same hash (another collection's page, its apply still
# waiting) is not staged again: the apply work would be the same. One staged at another
# hash is older metadata (its apply not run yet, or failed and kept for a re-run): it is
# dropped, so that run, applied after this one, cannot write it over the newer.
_STAGE = f"""
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s)
        AS r({", ".join(f"{c} {t}" for c, t in EDITION_COLUMNS.items())})
),
superseded AS (
    DELETE FROM bibliotheca_pendingedition p USING r
    WHERE p.identifier_id = r.identifier_id AND p.data_hash <> r.data_hash
)
INSERT INTO bibliotheca_pendingedition (batch, created_at, {_LISTED})
SELECT %(batch)s, %(now)s, {_LISTED}
FROM r
WHERE NOT EXISTS (
    SELECT 1 FROM bibliotheca_pendingedition p
    WHERE p.identifier_id = r.identifier_id AND p.data_hash = r.data_hash
)
"""

# Takes the batch's rows (deleted as they are written: a second delivery finds none);
# the last row per identifier wins; an Edition already at that hash is left alone.
_APPLY_STAGED = f"""
WITH taken AS (
    DELETE FROM bibliotheca_pendingedition WHERE batch = %(batch)s RETURNING id, {_LISTED}
),
latest AS (
    SELECT DISTINCT ON (identifier_id) * FROM taken ORDER BY identifier_id, id DESC
),
written AS (
    INSERT INTO bibliotheca_edition ({_LISTED}, updated_at)
    SELECT {_LISTED}, %(now)s FROM latest
    ON CONFLICT (identifier_id) DO UPDATE SET {_UPDATED}
    WHERE bibliotheca_edition.data_hash IS DISTINCT FROM EXCLUDED.data_hash
    RETURNING xmax = 0 AS created
)
SELECT (SELECT count(*) FROM taken), count(*) FILTER (WHERE created), count(*) FROM written
"""


def due_items(
    collection_id: int, marc_hashes: dict[str, str], *, type: str, cutoff: datetime
) -> dict[str, str | None]:
    """{value: stored Edition hash or None} of the values due for a lookup (`_DUE`);
    `marc_hashes`: {value: hash of its record}."""
    params = {
        "values": list(marc_hashes),
        "hashes": list(marc_hashes.values()),
        "type": type,
        "collection": collection_id,
        "cutoff": cutoff,
    }
    return dict(fetch(_DUE, params))


def ensure_identifiers(values: list[str], *, type: str) -> dict[str, int]:
    """{value: identifier id}, created when missing. One another transaction committed
    while the insert waited on it is not in the statement's snapshot: looked up again."""
    if not values:
        return {}
    params = {"values": values, "type": type}
    found = dict(fetch(_ENSURE_IDENTIFIERS, params))
    return found if len(found) == len(set(values)) else dict(fetch(_IDENTIFIERS, params))


def ensure_pools(
    collection_id: int,
    marc_hashes: dict[int, str],
    *,
    stamped: list[int],
    missing: list[int],
    now: datetime,
) -> int:
    """Pools of the collection found or created ({identifier id: MARC hash}), `stamped`
    ones marked checked `now`, `missing` ones checked and missing; returns how many were
    created."""
    if not marc_hashes:
        return 0
    params = {
        "collection": collection_id,
        "ids": list(marc_hashes),
        "hashes": list(marc_hashes.values()),
        "stamped": stamped,
        "missing": missing,
        "now": now,
    }
    return sum(created for (created,) in fetch(_POOLS, params))


def stage_editions(batch: UUID, rows: list[dict[str, Any]], *, now: datetime) -> int:
    """Stage Edition rows (EDITION_COLUMNS, JSON-ready) for the apply run of `batch`,
    but those already staged at the same hash, dropping those staged at another (older)
    hash; returns how many were staged."""
    with connection.cursor() as cursor:
        cursor.execute(_STAGE, {"batch": batch, "rows": Jsonb(rows), "now": now})
        return cursor.rowcount


def apply_staged(batch: str) -> dict[str, int]:
    """Write the batch's staged rows to Edition in one statement, taking them: a second
    delivery (or a re-run) of its apply run finds none, a failed attempt rolls back and
    its retry finds them all."""
    [(taken, created, written)] = fetch(
        _APPLY_STAGED, {"batch": uuid.UUID(batch), "now": timezone.now()}
    )
    return {"created": created, "updated": written - created, "unchanged": taken - written}
