"""Point expiration with warnings first, set-based and safe to run twice at once.

Per expiring program: its warnings, then its expirations (loyalty.selectors states the
rule), chunk by chunk along `loyalty_card_expirable_idx` (loyalty.sql). A card's change
and its message commit together: a chunk is one transaction, its notifications rendered
on a helper thread while PostgreSQL changes the cards (rendering stays off the chunk's
critical path: bench/expire_points.py); an error rolls the chunk back and fails the run.
One program's bad data never stops the others: it is skipped, logged and flagged.
"""

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.db import DataError, connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from jobs.models import Notification
from jobs.outbox.notifications import (
    OutgoingNotification,
    queue_rendered,
    render_notifications,
)
from jobs.runs.current import flag_for_attention
from jobs.runs.progress import report_progress
from loyalty import sql
from loyalty.models import LoyaltyCard, LoyaltyProgram
from loyalty.selectors import (
    cards_due_for_expiration,
    cards_due_for_warning,
    expiration_day,
    expiring_programs,
)
from loyalty.services.notifications import (
    CardRow,
    expired_notifications,
    is_reachable,
    warning_key,
    warning_notifications,
)

logger = logging.getLogger("loyalty.expiration")

#: Cards per chunk: one transaction, row locks held for one statement and one outbox insert.
CHUNK_SIZE = 5000


def expiration_notes(days: int) -> str:
    return f"Points expired after {days} days of inactivity"


def expire_points(
    *,
    program_id: int | None = None,
    card_ids: list[int] | None = None,
    dry_run: bool = False,
    chunk_size: int = CHUNK_SIZE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Warn, then expire, for every expiring program (or one, or the programs of `card_ids`
    and those cards only: the admin's "Expire now"); the counts, with the keys operators
    read in run history."""
    now = now or timezone.now()
    totals = {"cards_processed": 0, "points_expired": 0, "warnings_sent": 0, "unreachable": 0}
    programs = list(expiring_programs(program_id=program_id))
    if card_ids is not None:
        merchants = set(
            LoyaltyCard.objects.filter(pk__in=card_ids).values_list("merchant_id", flat=True)
        )
        programs = [p for p in programs if p.merchant_id in merchants]
    progress = {"done": 0, "program": 0, "programs": len(programs), "warned": 0, "expired": 0}

    def report(*, warned: int = 0, expired: int = 0) -> None:
        """report_progress replaces the stored dict: each report carries the run's totals."""
        progress["done"] += warned + expired
        progress["warned"] += warned
        progress["expired"] += expired
        report_progress(unit="cards", **progress)

    failed_program_ids: list[int] = []
    undelivered = 0
    dead_warnings = set() if dry_run else _dead_warning_keys()  # the same for every program
    for index, program in enumerate(programs, start=1):
        progress.update(program=index, done=0)
        report()
        try:
            if dry_run:
                counts = _preview_program(program, now=now, card_ids=card_ids)
                # Nothing is written: the preview's counts are what a real run would do.
                report(
                    warned=counts["warnings_sent"] + counts["unreachable"],
                    expired=counts["cards_processed"],
                )
            else:
                counts = _process_program(
                    program,
                    now=now,
                    chunk_size=chunk_size,
                    card_ids=card_ids,
                    report=report,
                    dead_warnings=dead_warnings,
                )
                undelivered += counts.pop("expired_warning_undelivered")
        except PROGRAM_DATA_ERRORS as exc:  # logged and flagged: history and /health/ show it
            logger.error("program %s skipped: its data cannot be processed: %r", program.pk, exc)
            flag_for_attention(
                f"loyalty program {program.pk} ({program.name[:60]}) skipped: "
                f"{type(exc).__name__}: {str(exc)[:120]}"
            )
            failed_program_ids.append(program.pk)
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
    if undelivered:
        # The rule is kept (the warning was queued a lead before) but the customer was never
        # told: staff may want to restore those points.
        result["expired_warning_undelivered"] = undelivered
        flag_for_attention(
            f"{undelivered} card(s) expired whose warning was never delivered (dead in the outbox)"
        )
    logger.info("point expiration %s: %s", "preview" if dry_run else "done", result)
    return result


#: What one program's own data can raise (dates out of range in Python or in SQL): that
#: program is reported and flagged, the others still run. Anything else (the database
#: gone, a bug) fails the run, which is retried.
PROGRAM_DATA_ERRORS = (ArithmeticError, ValueError, DataError)


def _process_program(
    program: LoyaltyProgram,
    *,
    now: datetime,
    chunk_size: int,
    card_ids: list[int] | None,
    report: Callable[..., None],
    dead_warnings: set[str],
) -> dict[str, int]:
    """One program's warnings, then its expirations, chunk by chunk (a card warned in this
    pass is never expired in it: its promised day is a lead away); `dead_warnings`: the
    keys of warnings dead in the outbox, whose expired cards are counted undelivered."""
    merchant_name = program.merchant.name
    day = expiration_day(program, now=now)
    params = {
        "merchant_id": program.merchant_id,
        "zone": day.zone,
        "days": day.days,
        "today": day.today,
        "warn_before": day.warn_before,
        "expire_before": day.expire_before,
        "limit": chunk_size,
        "now": now,
        "notes": expiration_notes(day.days),
        "card_ids": card_ids,
    }
    warned = unreachable = 0
    for rows in _chunks(
        sql.PICK_FOR_WARNING,
        params,
        change=sql.MARK_WARNED,
        change_params=lambda rows: {"expire_on": [day.promise(r.last_activity_at) for r in rows]},
        notify=lambda rows: warning_notifications(rows, merchant_name=merchant_name, day=day),
    ):
        reached = sum(1 for row in rows if is_reachable(row))
        warned += reached
        unreachable += len(rows) - reached
        report(warned=len(rows))
    cards = points = undelivered = 0
    for rows in _chunks(
        sql.PICK_FOR_EXPIRATION,
        params,
        change=sql.EXPIRE_CARDS,
        change_params=lambda rows: {"points": [row.points for row in rows]},
        notify=lambda rows: expired_notifications(
            rows, merchant_name=merchant_name, expiration_days=day.days
        ),
    ):
        cards += len(rows)
        points += sum(row.points for row in rows)
        undelivered += sum(
            warning_key(row, row.expire_on) in dead_warnings
            for row in rows
            if row.expire_on is not None
        )
        report(expired=len(rows))
    if warned or unreachable or cards:
        logger.info(
            "program %s: %s warned, %s unreachable, %s cards expired",
            program.pk,
            warned,
            unreachable,
            cards,
        )
    return {
        "cards_processed": cards,
        "points_expired": points,
        "warnings_sent": warned,
        "unreachable": unreachable,
        "expired_warning_undelivered": undelivered,
    }


def _dead_warning_keys() -> set[str]:
    """Keys of the warnings dead in the outbox (failed for good, or too late): an expired
    card's customer was never told. Read once a run, from the few dead rows (the status
    index), not looked up per expired card (a tenth of the run's time in
    bench/expire_points.py)."""
    dead = Notification.objects.filter(
        status=Notification.Status.DEAD, dedup_key__startswith="points_expiring:"
    )
    return set(dead.values_list("dedup_key", flat=True))


def _chunks(
    pick: str,
    params: dict[str, Any],
    *,
    change: str,
    change_params: Callable[[list[CardRow]], dict[str, Any]],
    notify: Callable[[list[CardRow]], list[OutgoingNotification]],
) -> Iterator[list[CardRow]]:
    """Pick, change (`params`, the picked `ids` and the chunk's `change_params`) and notify
    chunk by chunk along the walk, each chunk and its messages one transaction; yields each
    committed chunk's cards."""
    after_at, after_id = None, 0  # the walk starts before the first card
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loyalty-render") as renderer:
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql.WALK_IN_INDEX_ORDER)
                cursor.execute(pick, {**params, "after_at": after_at, "after_id": after_id})
                rows = list(map(CardRow._make, cursor.fetchall()))
                if not rows:
                    return
                # The cards are locked: render their messages while PostgreSQL changes them.
                rendering = renderer.submit(lambda chunk: render_notifications(notify(chunk)), rows)
                ids = [row.card_id for row in rows]
                cursor.execute(change, {**params, "ids": ids, **change_params(rows)})
                queue_rendered(rendering.result())
            yield rows
            if len(rows) < params["limit"]:
                return  # the walk reached the end of its range: another pick finds nothing
            last = rows[-1]  # rows come back in walk order
            after_at, after_id = last.last_activity_at, last.card_id


def _preview_program(
    program: LoyaltyProgram, *, now: datetime, card_ids: list[int] | None
) -> dict[str, int]:
    """What a real run would warn and expire now; reads only."""
    expiring = cards_due_for_expiration(program, now=now, card_ids=card_ids).aggregate(
        n=Count("pk"), points=Sum("points_balance")
    )
    unreachable = Q(customer__email="", customer__phone="")
    warning = cards_due_for_warning(program, now=now, card_ids=card_ids).aggregate(
        reached=Count("pk", filter=~unreachable), unreachable=Count("pk", filter=unreachable)
    )
    return {
        "cards_processed": expiring["n"],
        "points_expired": expiring["points"] or 0,
        "warnings_sent": warning["reached"],
        "unreachable": warning["unreachable"],
    }
