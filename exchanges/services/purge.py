"""Purge completed exchanges after the retention period, warning the organizer once first.

The organizer is warned once, and no exchange is purged without a warning: the
warning is tracked (`purge_warning_sent_at`, plus a dedup key) and promises a day
(`purge_after`, the first moment of that day in the exchange's zone, at least
`warning_days` after the warning and `retention_days` after both the completion and
the exchange date). An exchange is purged once that moment has passed; the delete
re-checks, on the locked rows, that it is still completed, still past retention and
that its date is still `retention_days` past (an organizer may have moved it). One
warned late is simply purged later. Each purge's id, name and row counts land in the
run's result, i.e. in history.
"""

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from exchanges.models import Exchange, Exclusion, Match, Participant, Reminder
from jobs.outbox.notifications import OutgoingNotification, queue_notifications
from jobs.runs.progress import report_progress

logger = logging.getLogger("exchanges.purge")

RETENTION_DAYS = 30
WARNING_DAYS = 7
BATCH_SIZE = 100


def exchanges_to_warn(*, now: datetime, retention_days: int, warning_days: int):
    """Completed, not warned of a purge day, and within `warning_days` of (or past) the
    purge date."""
    lead = now - timedelta(days=retention_days - warning_days)
    return Exchange.objects.filter(
        state=Exchange.State.COMPLETED,
        purge_after__isnull=True,
        completed_at__lte=lead,
        exchange_at__lte=lead,
    )


def exchanges_to_purge(*, now: datetime, retention_days: int, warning_days: int):
    """Completed and dated over `retention_days` ago, warned, and the promised day come.

    The purge locks these rows and deletes them in one transaction, so the conditions
    hold at delete time: an edit committed meanwhile is seen by the lock (PostgreSQL
    re-checks the WHERE on the new row version), one in progress keeps the row out.
    """
    retained = now - timedelta(days=retention_days)
    return Exchange.objects.filter(
        state=Exchange.State.COMPLETED,
        completed_at__lte=retained,
        exchange_at__lte=retained,
        purge_after__lte=now,
    )


def purge_day(exchange: Exchange, *, now: datetime, retention_days: int, warning_days: int) -> date:
    """The day (exchange's zone) a warning sent at `now` promises: its first moment is at
    least `warning_days` after now and `retention_days` after completion and the date."""
    earliest = max(
        exchange.completed_at + timedelta(days=retention_days),
        exchange.exchange_at + timedelta(days=retention_days),
        now + timedelta(days=warning_days),
    )
    day = earliest.astimezone(exchange.zone).date()
    return day if start_of_day(day, exchange) >= earliest else day + timedelta(days=1)


def start_of_day(day: date, exchange: Exchange) -> datetime:
    return datetime.combine(day, time(0), tzinfo=exchange.zone)


def purge_completed_exchanges(
    *,
    now: datetime | None = None,
    retention_days: int = RETENTION_DAYS,
    warning_days: int = WARNING_DAYS,
    exchange_ids: list[int] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Warn organizers once, then delete expired exchanges with all their rows.

    With `exchange_ids` (the admin's "Purge now", after confirmation) exactly those
    completed exchanges are deleted at once, without retention or warning.
    """
    now = now or timezone.now()
    if exchange_ids is not None:
        to_warn = Exchange.objects.none()
        to_purge = Exchange.objects.filter(pk__in=exchange_ids, state=Exchange.State.COMPLETED)
    else:
        to_warn = exchanges_to_warn(
            now=now, retention_days=retention_days, warning_days=warning_days
        )
        to_purge = exchanges_to_purge(
            now=now, retention_days=retention_days, warning_days=warning_days
        )
    if dry_run:
        return {
            "dry_run": True,
            "would_warn": list(to_warn.values_list("pk", flat=True)[:100]),
            "would_purge": list(to_purge.values_list("pk", flat=True)[:100]),
        }
    warned = _warn(to_warn, now=now, retention_days=retention_days, warning_days=warning_days)
    purged: list[dict[str, Any]] = []
    total = to_purge.count()
    report_progress(done=0, total=total, unit="exchanges", warned=len(warned))
    while True:
        with transaction.atomic():
            ids = list(
                to_purge.select_for_update(skip_locked=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:BATCH_SIZE]
            )
            if not ids:
                break
            summaries = _summaries(ids)
            to_purge.filter(pk__in=ids).delete()
        for summary in summaries:
            logger.info("purged exchange %(id)s %(name)r: %(rows)s", summary)
        purged.extend(summaries)
        total = max(total, len(purged))  # rows that became due meanwhile are purged too
        report_progress(done=len(purged), total=total, unit="exchanges", warned=len(warned))
    return {
        "warned": len(warned),
        "warned_ids": warned[:100],
        "purged": len(purged),
        "purged_exchanges": purged[:100],
    }


def _warn(rows, *, now: datetime, retention_days: int, warning_days: int) -> list[int]:
    """The earliest purge is 7 days after the warning, even for one warned late; the day
    promised is stored so the purge keeps it."""
    with transaction.atomic():
        exchanges = list(rows.select_for_update(skip_locked=True))
        days = {
            e.pk: purge_day(e, now=now, retention_days=retention_days, warning_days=warning_days)
            for e in exchanges
        }
        queue_notifications(
            OutgoingNotification(
                channel="email",
                recipient=e.organizer_email,
                template="exchanges/notifications/purge_warning",
                dedup_key=f"exchanges:purge_warning:{e.pk}:{days[e.pk]:%Y%m%d}",
                context={
                    "exchange_name": e.name,
                    "purge_date": days[e.pk].strftime("%A %d %B %Y"),
                },
                deliver_before=start_of_day(days[e.pk], e),
            )
            for e in exchanges
        )
        for e in exchanges:
            e.purge_warning_sent_at = now
            e.purge_after = start_of_day(days[e.pk], e)
        Exchange.objects.bulk_update(exchanges, ["purge_warning_sent_at", "purge_after"])
    return [e.pk for e in exchanges]


def _summaries(ids: list[int]) -> list[dict[str, Any]]:
    """Per exchange: id, name and how many rows of each kind the purge deletes (4 queries)."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    for label, model in (
        ("participants", Participant),
        ("matches", Match),
        ("exclusions", Exclusion),
        ("reminders", Reminder),
    ):
        per_exchange = dict(
            model.objects.filter(exchange_id__in=ids)
            .values("exchange_id")
            .annotate(n=Count("pk"))
            .values_list("exchange_id", "n")
        )
        for pk in ids:
            counts[pk][label] = per_exchange.get(pk, 0)
    names = dict(Exchange.objects.filter(pk__in=ids).values_list("pk", "name"))
    return [{"id": pk, "name": names[pk], "rows": counts[pk]} for pk in ids]
