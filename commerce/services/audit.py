"""Audit rows for order and subscription state changes, written in the change's transaction,
and who they name: the job run that made the change, or the caller."""

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from commerce.models import AuditLog
from jobs.runs.current import current_run


def record(
    *, actor: str, action: str, refs: Iterable[str], details: dict[str, Any] | None = None
) -> int:
    """One AuditLog row per object (one INSERT); returns how many."""
    now = timezone.now()
    rows = [
        AuditLog(
            actor=actor[:150], action=action, object_ref=ref, created_at=now, details=details or {}
        )
        for ref in refs
    ]
    AuditLog.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def job_actor(default: str = "commerce") -> str:
    """`<job> run #<id> (<who triggered it>)` inside a job, else `default`."""
    run = current_run()
    if run is None:
        return default[:150]
    return f"{run.job} run #{run.pk} ({run.triggered_by or run.trigger})"[:150]
