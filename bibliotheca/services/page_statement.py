"""The one statement that writes a group of import pages (write_group).

Pools found or created, the changed items staged for an apply run, the looked-up pools
stamped and the checkpoint moved with the chain's counts: one round trip, atomic
without a transaction, so a page is written whole or not at all.

Rows inserted by a data-modifying CTE are invisible to the statement's other reads
(one snapshot), so "inserted" UNION ALL "already there" lists every identifier once.
Existing identifiers and pools are probed per id through LATERAL ... LIMIT 1, which
pins both columns of their unique index: given `type = X AND value = ANY(...)`, the
planner, with no or stale statistics in a first import, took the index for the first
column only and filtered every identifier on each page (quadratic over a backfill).

Two gates (`ok`) keep the statement from writing anything but identifiers and pools
(both idempotent, unstamped): the open apply run must still be queued (locked FOR
SHARE, so that a worker cannot claim it and take its batch before the rows commit),
and every identifier must be in the snapshot (one another transaction committed while
the statement ran is not: the caller runs the statement again).
"""

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Collection, Identifier, LicensePool, Timestamp
from bibliotheca.services.apply import staged_rows_sql
from jobs.db import fetch_prepared
from jobs.models import JobRun

if TYPE_CHECKING:  # purchase_records imports this module
    from bibliotheca.services.purchase_records import ApplyRun, PageGroup

#: The chain's counters in Timestamp.progress, added up by every page's statement.
PROGRESS_KEYS = ("pages", "records", "skipped", "new_pools", "items_requests", "applies_queued")

_POOLS = """
identifiers_new AS (
    INSERT INTO {identifier} (type, value)
    SELECT DISTINCT %(type)s, unnest(%(values)s::varchar[])
    ON CONFLICT (type, value) DO NOTHING
    RETURNING id, value
),
identifiers AS (
    SELECT id, value FROM identifiers_new
    UNION ALL
    SELECT i.id, i.value FROM unnest(%(values)s::varchar[]) AS input(value)
    JOIN LATERAL (
        SELECT id, value FROM {identifier} WHERE type = %(type)s AND value = input.value
        LIMIT 1
    ) i ON true
),
ok AS (
    SELECT {run_ok} AND (SELECT count(*) FROM identifiers)
        = cardinality(%(values)s::varchar[]) AS ok
),
pools_new AS (
    INSERT INTO {pool} (collection_id, identifier_id, created_at, metadata_checked_at)
    SELECT %(collection)s, ident.id, %(now)s,
           CASE WHEN ident.value = ANY(%(looked)s::varchar[]) AND (SELECT ok FROM ok)
                THEN %(now)s::timestamptz END
    FROM identifiers ident
    ON CONFLICT (collection_id, identifier_id) DO NOTHING
    RETURNING id
),
checked AS (
    UPDATE {pool} SET metadata_checked_at = %(now)s
    WHERE id = ANY(ARRAY(
        SELECT p.id FROM identifiers ident
        JOIN LATERAL (
            SELECT id FROM {pool}
            WHERE collection_id = %(collection)s AND identifier_id = ident.id
            LIMIT 1
        ) p ON true
        WHERE ident.value = ANY(%(looked)s::varchar[])
    )) AND (SELECT ok FROM ok)
),
"""

_NO_POOLS = """
ok AS (SELECT true AS ok),
pools_new AS (SELECT NULL::bigint AS id WHERE false),
"""

_OPEN_RUN = """
open_run AS (
    SELECT id FROM {run} WHERE id = %(open_run)s AND status = 'queued' FOR SHARE
),
"""


def _count(key: str) -> str:
    added = (
        "(SELECT count(*) FROM pools_new) + %(new_pools_before)s"
        if key == "new_pools"
        else f"%({key})s"
    )
    return f"COALESCE((t.progress->>'{key}')::bigint, 0) + {added}"


# The chain's lock makes the hop the only writer of its Timestamp; the counters still
# add up in SQL.
_CHECKPOINT = """
ts AS (
    UPDATE {timestamp} t SET
        finish = %(finish)s,
        counter = t.counter + %(records)s,
        progress = jsonb_build_object({progress}, 'current_day', %(current_day)s::text),
        achievements = format(
            'MARC records fetched: %%s (skipped %%s), pages %%s, new pools %%s, '
            'applies queued %%s',
            {achievements}
        )
    WHERE t.service = %(service)s AND t.collection_id = %(collection)s AND (SELECT ok FROM ok)
    RETURNING t.progress
)
SELECT (SELECT ok FROM ok), {run_queued}, (SELECT progress FROM ts),
       (SELECT count(*) FROM pools_new), {run_id}
""".replace("{progress}", ", ".join(f"'{key}', {_count(key)}" for key in PROGRESS_KEYS)).replace(
    "{achievements}",
    ", ".join(
        _count(key) for key in ("records", "skipped", "pages", "new_pools", "applies_queued")
    ),
)


@dataclass(frozen=True)
class Written:
    #: Everything was written (else only idempotent identifier and pool inserts).
    ok: bool
    #: The apply run (open or new) is still queued.
    run_queued: bool
    progress: dict[str, Any]
    #: Pools this statement created (also when not ok).
    new_pools: int
    run_id: int | None
    batch: str | None


def write_group(
    collection: Collection,
    group: "PageGroup",
    *,
    changed: list[dict[str, Any]],
    open_run: "ApplyRun | None" = None,
    new_run: tuple[tuple[str, list[Any]], str] | None = None,
    new_pools_before: int = 0,
) -> Written:
    """Run the statement for `group` (purchase_records.PageGroup).

    `changed`: Edition rows to stage (keyed by `value`), for `open_run` (an ApplyRun
    that must still be queued) or for `new_run` (jobs.runner.queued_run_insert's SQL
    and params, and the run's batch). `new_pools_before`: pools the group's earlier
    attempts created (they wrote nothing else), counted as new with this one's.
    """
    params: dict[str, Any] = {
        **{key: group.counts.get(key, 0) for key in PROGRESS_KEYS if key != "new_pools"},
        "pages": group.pages,
        "now": group.now,
        "finish": group.checkpoint,
        "current_day": group.next_at.current_day.isoformat(),
        "service": PURCHASE_RECORD_SERVICE,
        "collection": collection.pk,
        "new_pools_before": new_pools_before,
    }
    parts = ["WITH"]
    run_ok, run_queued, run_id, batch = "true", "true", "NULL::bigint", None
    if open_run is not None:
        parts.append(_OPEN_RUN.format(run=JobRun._meta.db_table))
        params["open_run"] = open_run.run_id
        run_ok = run_queued = "EXISTS (SELECT 1 FROM open_run)"
        run_id, batch = "(SELECT id FROM open_run)", open_run.batch
    elif new_run is not None:
        (insert_sql, insert_params), batch = new_run
        pieces = insert_sql.split("%s")
        if len(pieces) != len(insert_params) + 1:
            raise RuntimeError("unexpected placeholders in the run insert")
        sql = pieces[0]
        for number, (value, rest) in enumerate(zip(insert_params, pieces[1:], strict=True)):
            params[f"run_{number}"] = value
            sql += f"%(run_{number})s" + rest
        parts.append(f"apply_run AS ({sql}),")
        run_id = "(SELECT id FROM apply_run)"
    if group.item_ids:
        parts.append(
            _POOLS.format(
                identifier=Identifier._meta.db_table, pool=LicensePool._meta.db_table, run_ok=run_ok
            )
        )
        params.update(
            type=str(Identifier.Type.BIBLIOTHECA_ID),
            values=list(group.item_ids),
            looked=list(group.looked),
        )
    else:
        parts.append(_NO_POOLS)
    if changed:
        parts.append(f"staged AS ({staged_rows_sql()} WHERE (SELECT ok FROM ok)),")
        params.update(batch=batch, staged_rows=Jsonb(changed))
    parts.append(
        _CHECKPOINT.format(timestamp=Timestamp._meta.db_table, run_queued=run_queued, run_id=run_id)
    )
    ((ok, queued, progress, new_pools, run),) = fetch_prepared("\n".join(parts), params)
    if ok and progress is None:  # a hop creates the row before its first page
        raise RuntimeError(f"no purchase-record Timestamp for collection {collection.pk}")
    if isinstance(progress, str | bytes):  # Django's connection loads jsonb as text
        progress = json.loads(progress)
    return Written(
        ok=bool(ok),
        run_queued=bool(queued),
        progress=progress or {},
        new_pools=new_pools,
        run_id=run,
        batch=batch,
    )
