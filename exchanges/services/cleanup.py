"""Delete expired auth leftovers (tokens, sessions, rate limits) in committed batches.

The condition is in the DELETE itself, not only in its subquery: a row renewed while the
DELETE waited for its lock (a rate-limit counter a request just bumped) is re-checked on
its new version and survives; otherwise the limit would reset, which helps brute force.
"""

from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from exchanges.models import MagicToken, RateLimit
from jobs.runs.progress import report_progress

BATCH_SIZE = 5000
USED_TOKEN_HOURS = 24


def delete_in_batches(rows: QuerySet, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete `rows` a batch at a time (autocommit per batch); returns how many went.

    Each batch reports the running total as the run's progress (no total: counting a
    large backlog first would cost as much as a batch).
    """
    total = 0
    while True:
        deleted, _ = rows.filter(pk__in=rows.values("pk")[:batch_size]).delete()
        total += deleted
        report_progress(done=total, unit="rows")
        if deleted < batch_size:
            return total


def _clean(rows: QuerySet, *, dry_run: bool, batch_size: int) -> dict[str, Any]:
    if dry_run:
        return {"dry_run": True, "would_delete": rows.count()}
    return {"deleted": delete_in_batches(rows, batch_size=batch_size)}


def cleanup_tokens(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> dict[str, Any]:
    """Expired tokens, and used ones older than a day."""
    now = now or timezone.now()
    used_before = now - timedelta(hours=USED_TOKEN_HOURS)
    rows = MagicToken.objects.filter(Q(expires_at__lte=now) | Q(used_at__lte=used_before))
    return _clean(rows, dry_run=dry_run, batch_size=batch_size)


def cleanup_sessions(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> dict[str, Any]:
    """Django's clearsessions, batched and counted (it deletes expire_date < now), for the
    session engine's model."""
    model = import_module(settings.SESSION_ENGINE).SessionStore.get_model_class()
    rows = model.objects.filter(expire_date__lt=now or timezone.now())
    return _clean(rows, dry_run=dry_run, batch_size=batch_size)


def cleanup_rate_limits(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> dict[str, Any]:
    rows = RateLimit.objects.filter(expires_at__lte=now or timezone.now())
    return _clean(rows, dry_run=dry_run, batch_size=batch_size)
