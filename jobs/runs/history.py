"""Pruning of run history and django-q2's task rows in batched deletes, so a backlog never holds one long lock."""

from datetime import timedelta

from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings

#: One batch statement per pruned table (fixed identifiers, never user input). Runs have
#: their own: other rows point at them.
PRUNED_TABLES = {
    "job_runs": sql.DELETE_RUN_BATCH,
    "queue_tasks": sql.DELETE_BATCH.format(table="django_q_task", pk="id", column="stopped"),
    "notifications_sent": sql.DELETE_BATCH.format(
        table="jobs_notification", pk="id", column="sent_at"
    ),
}


def prune_history(*, older_than_days: int | None = None, batch_size: int | None = None) -> dict:
    """Delete finished runs, django-q2 Success/Failure rows and sent notifications past
    retention, each batch its own statement (autocommit)."""
    days = int(older_than_days if older_than_days is not None else jobs_settings.HISTORY_DAYS)
    if days < 1:
        raise ValueError("older_than_days must be at least 1")
    limit = int(batch_size or jobs_settings.PRUNE_BATCH_SIZE)
    cutoff = timezone.now() - timedelta(days=days)
    result: dict[str, int] = {"older_than_days": days}
    for label, statement in PRUNED_TABLES.items():
        deleted = batches = 0
        while True:
            count = len(sql.fetch(statement, {"cutoff": cutoff, "limit": limit}))
            deleted += count
            batches += 1
            if count < limit:
                break
        result[f"{label}_deleted"] = deleted
        result[f"{label}_batches"] = batches
    return result
