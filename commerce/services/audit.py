"""Audit rows for order and subscription state changes, written in the change's transaction."""

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from commerce.models import AuditLog


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
