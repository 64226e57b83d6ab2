"""Outbox rows written by the statement that makes the change, for several templates at once.

A commerce chunk statement (commerce.sql) has one `outbox_<name> AS (__OUTBOX_<NAME>__)`
CTE per kind of notification and `__OUTBOX_SUMMARY__` in its final select list. Each
placeholder becomes jobs.services.outbox.outbox_insert_sql's INSERT (its parameters
renamed per part, so two inserts never share a name); the summary becomes the count of
new rows and, for a template only the engine can render, that part's `notify` rows as
JSON, which `queue_fallback_rows` renders in Python inside the chunk's transaction. So
either way a change and its notifications commit together.
"""

from dataclasses import dataclass, field
from typing import Any

from jobs.services.notification_render import ColumnKind
from jobs.services.outbox import (
    OutgoingNotification,
    outbox_insert_sql,
    queue_notifications,
)


@dataclass(frozen=True, kw_only=True)
class OutboxPart:
    """One kind of notification a chunk statement writes."""

    #: Short name: the CTE is `outbox_<name>`, its placeholder `__OUTBOX_<NAME>__`.
    name: str
    #: The CTE with `channel`, `recipient`, `dedup_key` and one column per context key.
    source: str
    template: str
    columns: dict[str, ColumnKind]
    constants: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkStatement:
    sql: str
    params: dict[str, Any]
    #: Parts rendered in Python (their rows come back as JSON), in summary order.
    fallback: tuple[OutboxPart, ...]


def build_chunk_statement(template_sql: str, parts: list[OutboxPart]) -> ChunkStatement:
    """Fill the outbox placeholders of `template_sql`; built once per run."""
    sql = template_sql
    params: dict[str, Any] = {}
    fallback: list[OutboxPart] = []
    counts: list[str] = []
    for index, part in enumerate(parts):
        placeholder = f"__OUTBOX_{part.name.upper()}__"
        built = outbox_insert_sql(
            source=part.source,
            template=part.template,
            columns=part.columns,
            constants=part.constants,
        )
        if built is None:
            sql = sql.replace(placeholder, "SELECT 1 WHERE false")
            fallback.append(part)
            continue
        insert, insert_params = built
        prefix = f"ob{index}_"
        insert = insert.replace("%(outbox_", f"%({prefix}")
        params.update({prefix + key[len("outbox_") :]: v for key, v in insert_params.items()})
        sql = sql.replace(placeholder, insert)
        counts.append(f"(SELECT count(*) FROM outbox_{part.name})")
    rows = [f"(SELECT json_agg(x) FROM {part.source} x)" for part in fallback]
    summary = f"{' + '.join(counts) or '0'}, json_build_array({', '.join(rows)})"
    return ChunkStatement(sql.replace("__OUTBOX_SUMMARY__", summary), params, tuple(fallback))


def queue_fallback_rows(statement: ChunkStatement, rows_per_part: list[Any] | None) -> int:
    """Render and queue the rows of the parts SQL could not render; in the chunk's
    transaction, so a template error rolls the chunk back. Returns new rows."""
    items: list[OutgoingNotification] = []
    for part, rows in zip(statement.fallback, rows_per_part or [], strict=False):
        for row in rows or []:
            if row["channel"] not in ("email", "sms"):
                continue
            items.append(
                OutgoingNotification(
                    channel=row["channel"],
                    recipient=row["recipient"],
                    template=part.template,
                    dedup_key=row["dedup_key"],
                    context={**part.constants, **{key: row[key] for key in part.columns}},
                )
            )
    return queue_notifications(items) if items else 0
