"""Find or create identifiers and license pools for a page of ids, in one SQL statement."""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from bibliotheca.models import Collection, Edition, Identifier, LicensePool


@dataclass(frozen=True, kw_only=True)
class PoolRow:
    """A page id's pool, and what needs-apply and the metadata refresh need to know."""

    identifier_id: int
    pool_id: int
    #: Created by this call.
    is_new: bool
    #: When item metadata was last looked up (None: never).
    metadata_checked_at: datetime | None
    #: Edition.data_hash of the identifier, None without an Edition.
    edition_hash: str | None


# Rows inserted by a data-modifying CTE are invisible to the statement's other reads
# (one snapshot), so "inserted" UNION ALL "already there" lists every row exactly once.
# Existing identifiers and pools are probed per id through LATERAL ... LIMIT 1, which
# pins both columns of their unique index: given `type = X AND value = ANY(...)` (or
# `collection = X AND identifier = ANY(...)`), the planner, with no or stale
# statistics in a first import, took the index for the first column only and
# filtered every identifier (every pool of the collection) on each page: quadratic
# over a backfill. The Edition lookup is `identifier_id = ANY(array)` on its own
# one-column unique index (ARRAY(subquery) is computed once): one index scan.
_FIND_OR_CREATE = """
WITH new_identifiers AS (
    INSERT INTO {identifier} (type, value)
    SELECT DISTINCT %(type)s, unnest(%(values)s::varchar[])
    ON CONFLICT (type, value) DO NOTHING
    RETURNING id, value
),
identifiers AS (
    SELECT id, value FROM new_identifiers
    UNION ALL
    SELECT i.id, i.value FROM unnest(%(values)s::varchar[]) AS input(value)
    JOIN LATERAL (
        SELECT id, value FROM {identifier}
        WHERE type = %(type)s AND value = input.value
        LIMIT 1
    ) i ON true
),
new_pools AS (
    INSERT INTO {pool} (collection_id, identifier_id, created_at)
    SELECT %(collection)s, id, %(now)s FROM identifiers
    ON CONFLICT (collection_id, identifier_id) DO NOTHING
    RETURNING id, identifier_id
),
editions AS (
    SELECT identifier_id, data_hash FROM {edition}
    WHERE identifier_id = ANY(ARRAY(SELECT id FROM identifiers))
)
SELECT ident.value, ident.id, COALESCE(np.id, op.id), np.id IS NOT NULL,
       op.metadata_checked_at, e.data_hash
FROM identifiers ident
LEFT JOIN new_pools np ON np.identifier_id = ident.id
LEFT JOIN LATERAL (
    SELECT id, metadata_checked_at FROM {pool}
    WHERE collection_id = %(collection)s AND identifier_id = ident.id
    LIMIT 1
) op ON true
LEFT JOIN editions e ON e.identifier_id = ident.id
"""


def find_or_create_pools(
    collection: Collection, item_ids: list[str], *, now: datetime
) -> dict[str, PoolRow]:
    """{item id: PoolRow} for every id, creating the missing identifiers and pools.

    One statement (INSERT ... ON CONFLICT DO NOTHING for both tables, and the pools'
    metadata state and Edition hash in the same round trip). A row another transaction
    committed while the statement ran is not in its snapshot: such ids are looked up
    again by a second statement (rare: two collections creating the same identifier).
    """
    sql = _FIND_OR_CREATE.format(
        identifier=Identifier._meta.db_table,
        pool=LicensePool._meta.db_table,
        edition=Edition._meta.db_table,
    )
    wanted = list(dict.fromkeys(item_ids))
    found: dict[str, PoolRow] = {}
    for _ in range(3):
        missing = [v for v in wanted if v not in found]
        if not missing:
            break
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                {
                    "values": missing,
                    "type": Identifier.Type.BIBLIOTHECA_ID,
                    "collection": collection.pk,
                    "now": now,
                },
            )
            for value, identifier_id, pool_id, is_new, checked_at, edition_hash in cursor:
                if pool_id is not None:
                    found[value] = PoolRow(
                        identifier_id=identifier_id,
                        pool_id=pool_id,
                        is_new=is_new,
                        metadata_checked_at=checked_at,
                        edition_hash=edition_hash,
                    )
    if len(found) != len(wanted):
        raise RuntimeError(f"could not find or create pools for {len(wanted) - len(found)} ids")
    return found
