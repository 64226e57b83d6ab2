"""Purge completed exchanges after the retention period, warning the organizer once first.

The warning promises a day (`purge_after`) the purge keeps; the delete re-checks its
conditions on the locked rows, since an organizer may have moved the date. The rules:
docs/exchanges.md, `exchanges.purge_completed`.
"""

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, Count, F, Func, Q, Value
from django.db.models.functions import Cast
from django.utils import timezone

from exchanges.models import Exchange, Exclusion, Match, Participant, Reminder, counts_by_exchange
from jobs.models import Notification
from jobs.outbox.notifications import OutgoingNotification, queue_notifications
from jobs.runs.progress import report_progress

logger = logging.getLogger("exchanges.purge")

RETENTION_DAYS = 30
WARNING_DAYS = 7
BATCH_SIZE = 100


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
        # Not warned yet, and within `warning_days` of (or past) the purge date.
        lead = now - timedelta(days=retention_days - warning_days)
        to_warn = Exchange.objects.filter(
            state=Exchange.State.COMPLETED,
            purge_after__isnull=True,
            completed_at__lte=lead,
            exchange_at__lte=lead,
        )
        # Completed and dated over `retention_days` ago, and the promised day come. Locked
        # and deleted in one transaction: PostgreSQL re-checks the WHERE on a row an edit
        # committed meanwhile, and a row an edit holds is skipped.
        retained = now - timedelta(days=retention_days)
        to_purge = Exchange.objects.filter(
            state=Exchange.State.COMPLETED,
            completed_at__lte=retained,
            exchange_at__lte=retained,
            purge_after__lte=now,
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
            _notifications(ids).delete()
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


#: The outbox keys of an exchange's emails are `exchanges:<kind>:<exchange id>:…`.
NOTIFICATION_KINDS = ("match", "match_changed", "rematch_needed", "reminder", "purge_warning")


def _notifications(ids: list[int]):
    """The outbox rows of these exchanges' emails: they name every participant's address
    and whom they drew, so they go with the exchange (sent, dead or still waiting)."""
    prefixes = Q()
    for pk in ids:
        for kind in NOTIFICATION_KINDS:
            prefixes |= Q(dedup_key__startswith=f"exchanges:{kind}:{pk}:")
    return Notification.objects.filter(prefixes)


def _summaries(ids: list[int]) -> list[dict[str, Any]]:
    """Per exchange: id, name and how many rows of each kind the purge deletes (one query
    per kind)."""
    kinds = (
        ("participants", Participant),
        ("matches", Match),
        ("exclusions", Exclusion),
        ("reminders", Reminder),
    )
    counts = {label: counts_by_exchange(model, ids) for label, model in kinds}
    exchange_of_key = Cast(
        Func(F("dedup_key"), Value(":"), Value(3), function="split_part"), BigIntegerField()
    )
    counts["notifications"] = dict(
        _notifications(ids)
        .values(exchange_id=exchange_of_key)
        .annotate(n=Count("pk"))
        .values_list("exchange_id", "n")
    )
    names = dict(Exchange.objects.filter(pk__in=ids).values_list("pk", "name"))
    rows = {pk: {label: n.get(pk, 0) for label, n in counts.items()} for pk in ids}
    return [{"id": pk, "name": names[pk], "rows": rows[pk]} for pk in ids]
