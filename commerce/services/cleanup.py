"""Retention of carts, tokens and audit rows, in committed batches.

Each batch is one statement (commerce.sql), committed on its own, so a large backlog
never holds one long lock or a huge transaction, and a killed run keeps what it
deleted. Every function returns counts for history; `dry_run` only counts.
"""

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from commerce import sql
from commerce.conf import commerce_settings
from commerce.models import AuditLog, Cart, ExpiringToken
from jobs.runs.progress import report_progress
from jobs.sql import fetch

BATCH_SIZE = 5000


def cleanup_expired_carts(
    *,
    older_than_days: int | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Delete carts not updated for `older_than_days` (COMMERCE_CART_RETENTION_DAYS, 30)
    with their lines: empty carts first (the cheap, common case), then the others."""
    days = older_than_days if older_than_days is not None else commerce_settings.CART_RETENTION_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=int(days))
    stale = Cart.objects.filter(updated_at__lt=cutoff)
    if dry_run:
        empty = stale.filter(lines__isnull=True).count()
        return {
            "older_than_days": days,
            "empty_carts": empty,
            "carts_with_lines": stale.count() - empty,
            "dry_run": True,
        }
    counts = {"empty_carts_deleted": 0, "carts_with_lines_deleted": 0, "lines_deleted": 0}
    for empty, key in ((True, "empty_carts_deleted"), (False, "carts_with_lines_deleted")):
        while True:
            ((carts, lines),) = fetch(
                sql.DELETE_CARTS_BATCH,
                {"cutoff": cutoff, "empty": empty, "limit": batch_size},
            )
            counts[key] += carts
            counts["lines_deleted"] += lines
            report_progress(
                done=counts["empty_carts_deleted"] + counts["carts_with_lines_deleted"],
                unit="carts",
            )
            if carts < batch_size:
                break
    return {"older_than_days": days, **counts, "dry_run": False}


def cleanup_expired_tokens(
    *, dry_run: bool = False, batch_size: int = BATCH_SIZE, now: datetime | None = None
) -> dict[str, Any]:
    """Delete expired tokens and tokens used more than a day ago; counted per kind."""
    now = now or timezone.now()
    used_before = now - timedelta(hours=int(commerce_settings.USED_TOKEN_HOURS))
    per_kind = dict.fromkeys(ExpiringToken.Kind.values, 0)
    if dry_run:
        rows = (
            ExpiringToken.objects.filter(expires_at__lte=now)
            | ExpiringToken.objects.filter(used_at__lte=used_before)
        ).values_list("kind")
        for (kind,) in rows:
            per_kind[kind] += 1
        return {"deleted": sum(per_kind.values()), "per_kind": per_kind, "dry_run": True}
    while True:
        rows = fetch(
            sql.DELETE_TOKENS_BATCH, {"now": now, "used_before": used_before, "limit": batch_size}
        )
        for kind, count in rows:
            per_kind[kind] = per_kind.get(kind, 0) + count
        report_progress(done=sum(per_kind.values()), unit="tokens")
        if sum(count for _kind, count in rows) < batch_size:
            break
    return {"deleted": sum(per_kind.values()), "per_kind": per_kind, "dry_run": False}


def cleanup_old_audit_logs(
    *,
    older_than_days: int | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Delete audit rows older than COMMERCE_AUDIT_RETENTION_DAYS (90), oldest first."""
    days = (
        older_than_days if older_than_days is not None else commerce_settings.AUDIT_RETENTION_DAYS
    )
    cutoff = (now or timezone.now()) - timedelta(days=int(days))
    if dry_run:
        count = AuditLog.objects.filter(created_at__lt=cutoff).count()
        return {"older_than_days": days, "would_delete": count, "dry_run": True}
    deleted = 0
    while True:
        count = len(fetch(sql.DELETE_AUDIT_BATCH, {"cutoff": cutoff, "limit": batch_size}))
        deleted += count
        report_progress(done=deleted, unit="rows")
        if count < batch_size:
            break
    return {"older_than_days": days, "deleted": deleted, "dry_run": False}
