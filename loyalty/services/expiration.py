"""Point expiration with 14-day warnings (seed 000), set-based and safe to run twice at once.

Per active program with `points_expiration_days > 0`: first the warnings (cards
inactive past expiration-minus-14 days, not yet expired, not yet warned in this
inactivity cycle), then the expiration (balance to 0, a POINTS_EXPIRED ledger row,
total_points_voided increased). Each chunk is one statement that also writes its outbox
rows (loyalty.sql), commits on its own, and locks its cards FOR UPDATE SKIP LOCKED. Chunks walk the cards
in (last_activity_at, id) order along `loyalty_card_expirable_idx` (see loyalty.sql).
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import DataError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from jobs.context import flag_for_attention, report_progress
from jobs.services.outbox import kick_delivery, queue_notifications
from loyalty import sql
from loyalty.models import LoyaltyCard, LoyaltyProgram
from loyalty.services.notifications import (
    CardRow,
    expired_notifications,
    expired_outbox_sql,
    warning_notifications,
    warning_outbox_sql,
)

logger = logging.getLogger("loyalty.expiration")

WARNING_DAYS = 14
#: Cards per chunk: one transaction, row locks held for one statement (plus, when templates
#: need the engine, one outbox insert).
CHUNK_SIZE = 5000


def expiring_programs(*, program_id: int | None = None):
    """Active programs whose points expire, with their merchant."""
    programs = LoyaltyProgram.objects.filter(
        is_active=True, points_expiration_days__isnull=False, points_expiration_days__gt=0
    ).select_related("merchant")
    if program_id is not None:
        programs = programs.filter(pk=program_id)
    return programs.order_by("pk")


def expiration_notes(days: int) -> str:
    return f"Points expired after {days} days of inactivity"


class _Progress:
    """What the run page shows: cards handled in the current program, running totals.

    report_progress replaces the stored dict, so every report carries the totals so far:
    `done` counts this program's cards handled (warned, failed to warn, or expired; the
    two phases never touch the same card), `warned` / `expired` the whole run's. There is
    no `total`: counting the due cards first would cost another scan.
    """

    def __init__(self, *, programs: int) -> None:
        self.programs = programs
        self.program = 0
        self.done = self.warned = self.warnings_failed = self.expired = 0

    def start_program(self, index: int) -> None:
        self.program, self.done = index, 0
        self.report()

    def chunk(self, *, warned: int = 0, warnings_failed: int = 0, expired: int = 0) -> None:
        self.done += warned + warnings_failed + expired
        self.warned += warned
        self.warnings_failed += warnings_failed
        self.expired += expired
        self.report()

    def report(self) -> None:
        extra = {"warnings_failed": self.warnings_failed} if self.warnings_failed else {}
        report_progress(
            done=self.done,
            unit="cards",
            program=self.program,
            programs=self.programs,
            warned=self.warned,
            expired=self.expired,
            **extra,
        )


def expire_points(
    *,
    program_id: int | None = None,
    card_ids: list[int] | None = None,
    dry_run: bool = False,
    chunk_size: int = CHUNK_SIZE,
    now: datetime | None = None,
    render_in_sql: bool = True,
) -> dict[str, Any]:
    """Warn, then expire, for every expiring program (or one); returns the seed's result keys.

    `card_ids` limits both phases to those cards (admin "Expire now"); cards not yet due
    are left alone either way. `render_in_sql=False` renders every notification in
    Python, the path templates that need the engine take (tests compare the two).
    """
    now = now or timezone.now()
    totals = {
        "cards_processed": 0,
        "points_expired": 0,
        "warnings_sent": 0,
        "warnings_failed": 0,
        "expired_notifications_failed": 0,
    }
    programs = list(expiring_programs(program_id=program_id))
    if card_ids is not None:
        merchants = set(
            LoyaltyCard.objects.filter(pk__in=card_ids).values_list("merchant_id", flat=True)
        )
        programs = [p for p in programs if p.merchant_id in merchants]
    progress = _Progress(programs=len(programs))
    failed_program_ids: list[int] = []
    for index, program in enumerate(programs, start=1):
        progress.start_program(index)
        try:
            if dry_run:
                counts = _preview_program(program, now=now, card_ids=card_ids)
                # Nothing is written: the preview's counts are what a real run would do.
                progress.chunk(warned=counts["warnings_sent"], expired=counts["cards_processed"])
            else:
                counts = _process_program(
                    program,
                    now=now,
                    chunk_size=chunk_size,
                    card_ids=card_ids,
                    progress=progress,
                    render_in_sql=render_in_sql,
                )
        except PROGRAM_DATA_ERRORS as exc:
            failed_program_ids.append(_program_failed(program, exc))
            continue
        for key, value in counts.items():
            totals[key] += value
    result = {
        "status": "partial" if failed_program_ids else "success",
        "dry_run": dry_run,
        "programs_processed": len(programs) - len(failed_program_ids),
        **totals,
    }
    if failed_program_ids:
        result["failed_program_ids"] = failed_program_ids
    logger.info("point expiration %s: %s", "preview" if dry_run else "done", result)
    return result


#: What one program's own data can raise (dates out of range in Python or in SQL): that
#: program is reported and flagged, the others still run. Anything else (the database
#: gone, a bug) fails the run, which is retried.
PROGRAM_DATA_ERRORS = (ArithmeticError, ValueError, DataError)


def _program_failed(program: LoyaltyProgram, exc: Exception) -> int:
    """Log and flag the run (history and /health/ show it); the program's id."""
    logger.error("program %s skipped: its data cannot be processed: %r", program.pk, exc)
    flag_for_attention(
        f"loyalty program {program.pk} ({program.name[:60]}) skipped: {type(exc).__name__}: "
        f"{str(exc)[:120]}"
    )
    return program.pk


def _thresholds(program: LoyaltyProgram, now: datetime) -> tuple[datetime, datetime]:
    days = program.points_expiration_days or 0
    expiration_threshold = now - timedelta(days=days)
    warning_threshold = now - timedelta(days=days - WARNING_DAYS)
    return warning_threshold, expiration_threshold


def _process_program(
    program: LoyaltyProgram,
    *,
    now: datetime,
    chunk_size: int,
    card_ids: list[int] | None,
    progress: _Progress | None = None,
    render_in_sql: bool = True,
) -> dict[str, int]:
    warned, warn_failed = _send_warnings(
        program,
        now=now,
        chunk_size=chunk_size,
        card_ids=card_ids,
        progress=progress,
        render_in_sql=render_in_sql,
    )
    cards, points, notify_failed = _expire(
        program,
        now=now,
        chunk_size=chunk_size,
        card_ids=card_ids,
        progress=progress,
        render_in_sql=render_in_sql,
    )
    return {
        "cards_processed": cards,
        "points_expired": points,
        "warnings_sent": warned,
        "warnings_failed": warn_failed,
        "expired_notifications_failed": notify_failed,
    }


def _rows(cursor) -> list[CardRow]:
    """The chunk statement's rows: id, number, points, last_activity_at, name, email, phone."""
    return list(map(CardRow._make, cursor.fetchall()))


def _with_outbox(
    statement: str, outbox: tuple[str, dict[str, Any]] | None, **params: Any
) -> tuple[str, dict[str, Any]] | None:
    """A `..._WITH_OUTBOX` chunk statement with its outbox INSERT and their fixed
    parameters, built once per program; None when the templates need the engine."""
    if outbox is None:
        return None
    insert, insert_params = outbox
    return sql.with_outbox(statement, insert), {**insert_params, **params}


def _run_chunk_with_outbox(
    chunk_statement: tuple[str, dict[str, Any]], params: dict[str, Any]
) -> tuple[int, int, datetime | None, int | None]:
    """One chunk and its outbox rows, in the caller's transaction: (cards, points, walk
    position). Delivery is kicked after commit when the chunk queued a notification."""
    statement, fixed = chunk_statement
    with connection.cursor() as cursor:
        cursor.execute(statement, {**params, **fixed})
        count, queued, points, last_at, last_id = cursor.fetchone()
    if queued:
        transaction.on_commit(kick_delivery)
    return count, points, last_at, last_id


def _send_warnings(
    program: LoyaltyProgram,
    *,
    now: datetime,
    chunk_size: int,
    card_ids: list[int] | None,
    progress: _Progress | None = None,
    render_in_sql: bool = True,
) -> tuple[int, int]:
    """Mark and notify chunk by chunk, each chunk one transaction with its notifications.

    Normally one statement per chunk marks the cards and writes their outbox rows
    (rendered in SQL). When the templates need the engine, the rows are rendered in
    Python; a chunk whose notifications fail is then rolled back, skipped by the
    (last_activity_at, id) cursor (no spin) and warned again on the next run.
    """
    warning_threshold, expiration_threshold = _thresholds(program, now)
    days = program.points_expiration_days or 0
    chunk_statement = _with_outbox(
        sql.WARN_CHUNK_WITH_OUTBOX,
        warning_outbox_sql(merchant_name=program.merchant.name, expiration_days=days)
        if render_in_sql
        else None,
        expiration_days=days,
    )
    sent = failed = 0
    # (expiration_threshold, 0) is where the window starts: the index scan starts there too.
    after_at, after_id = expiration_threshold, 0
    while True:
        params = {
            "merchant_id": program.merchant_id,
            "warning_threshold": warning_threshold,
            "expiration_threshold": expiration_threshold,
            "after_at": after_at,
            "after_id": after_id,
            "limit": chunk_size,
            "now": now,
            "card_ids": card_ids,
        }
        if chunk_statement is not None:
            with transaction.atomic():
                count, _points, last_at, last_id = _run_chunk_with_outbox(chunk_statement, params)
            if not count:
                break
            sent += count
            if progress is not None:
                progress.chunk(warned=count)
            after_at, after_id = last_at, last_id
            continue
        rows: list[CardRow] = []
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(sql.WARN_CHUNK, params)
                    rows = _rows(cursor)
                if not rows:
                    break
                queue_notifications(
                    warning_notifications(
                        rows, merchant_name=program.merchant.name, expiration_days=days, now=now
                    )
                )
        except Exception:
            if not rows:
                raise
            logger.exception(
                "program %s: could not queue %s warnings (cards %s..%s); retried next run",
                program.pk,
                len(rows),
                rows[0].card_id,
                rows[-1].card_id,
            )
            failed += len(rows)
            if progress is not None:
                progress.chunk(warnings_failed=len(rows))
        else:
            sent += len(rows)
            if progress is not None:
                progress.chunk(warned=len(rows))
        after_at, after_id = max((row.last_activity_at, row.card_id) for row in rows)
    if sent or failed:
        logger.info("program %s: %s warnings queued, %s failed", program.pk, sent, failed)
    return sent, failed


def _expire(
    program: LoyaltyProgram,
    *,
    now: datetime,
    chunk_size: int,
    card_ids: list[int] | None,
    progress: _Progress | None = None,
    render_in_sql: bool = True,
) -> tuple[int, int, int]:
    """Expire chunk by chunk, each chunk one transaction with its notifications.

    Normally one statement per chunk also writes the outbox rows, rendered in SQL: an
    expiration and its notification commit together or not at all. When the templates
    need the engine, the rows come back to Python and are queued in a savepoint, so a
    notification that fails to render never undoes an expiration (it is counted).
    """
    _, expiration_threshold = _thresholds(program, now)
    days = program.points_expiration_days or 0
    chunk_statement = _with_outbox(
        sql.EXPIRE_CHUNK_WITH_OUTBOX,
        expired_outbox_sql(merchant_name=program.merchant.name, expiration_days=days)
        if render_in_sql
        else None,
    )
    cards = points = notify_failed = 0
    after_at, after_id = None, 0
    while True:
        params = {
            "merchant_id": program.merchant_id,
            "expiration_threshold": expiration_threshold,
            "after_at": after_at,
            "after_id": after_id,
            "limit": chunk_size,
            "now": now,
            "notes": expiration_notes(days),
            "card_ids": card_ids,
        }
        with transaction.atomic():
            if chunk_statement is not None:
                count, chunk_points, last_at, last_id = _run_chunk_with_outbox(
                    chunk_statement, params
                )
                if not count:
                    break
            else:
                count, chunk_points, last_at, last_id, failed = _expire_chunk_in_python(
                    program, params=params, days=days
                )
                if not count:
                    break
                notify_failed += failed
        cards += count
        points += chunk_points
        if progress is not None:
            progress.chunk(expired=count)
        after_at, after_id = last_at, last_id
        logger.info(
            "program %s: expired chunk of %s cards, %s cards so far", program.pk, count, cards
        )
    return cards, points, notify_failed


def _expire_chunk_in_python(
    program: LoyaltyProgram, *, params: dict[str, Any], days: int
) -> tuple[int, int, datetime | None, int, int]:
    """One chunk whose notifications are rendered in Python: (cards, points, walk
    position, notifications that failed). Runs inside the chunk's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(sql.EXPIRE_CHUNK, params)
        rows = _rows(cursor)
    if not rows:
        return 0, 0, None, 0, 0
    failed = 0
    try:
        with transaction.atomic():
            queue_notifications(
                expired_notifications(
                    rows, merchant_name=program.merchant.name, expiration_days=days
                )
            )
    except Exception:
        logger.exception(
            "program %s: expired %s cards but could not queue their notifications",
            program.pk,
            len(rows),
        )
        failed = len(rows)
    last = rows[-1]
    return len(rows), sum(row.points for row in rows), last.last_activity_at, last.card_id, failed


def _preview_program(
    program: LoyaltyProgram, *, now: datetime, card_ids: list[int] | None
) -> dict[str, int]:
    """What a real run would warn and expire now; reads only."""
    warning_threshold, expiration_threshold = _thresholds(program, now)
    cards = LoyaltyCard.objects.filter(
        merchant_id=program.merchant_id, is_active=True, points_balance__gt=0
    )
    if card_ids is not None:
        cards = cards.filter(pk__in=card_ids)
    due_warning = cards.filter(
        last_activity_at__lt=warning_threshold,
        last_activity_at__gte=expiration_threshold,
    ).filter(
        Q(last_expiration_warning_at__isnull=True)
        | Q(last_expiration_warning_at__lt=F("last_activity_at"))
    )
    expiring = cards.filter(last_activity_at__lt=expiration_threshold).aggregate(
        n=Count("pk"), points=Sum("points_balance")
    )
    return {
        "cards_processed": expiring["n"],
        "points_expired": expiring["points"] or 0,
        "warnings_sent": due_warning.count(),
        "warnings_failed": 0,
        "expired_notifications_failed": 0,
    }
