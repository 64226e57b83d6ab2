"""Reads of the loyalty app with names: which programs expire points, which cards are due.

The one place that says which cards a run warns or expires (besides the chunk
statements of loyalty.sql, which apply the same rules while they lock): the dry run and
the admin's "Expire now" confirmation page both ask here.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q, QuerySet

from loyalty.models import LoyaltyCard, LoyaltyProgram

#: A card is warned this many days before its points expire.
WARNING_DAYS = 14


def expiring_programs(*, program_id: int | None = None) -> QuerySet[LoyaltyProgram]:
    """Active programs whose points expire, with their merchant."""
    programs = LoyaltyProgram.objects.filter(
        is_active=True, points_expiration_days__isnull=False, points_expiration_days__gt=0
    ).select_related("merchant")
    if program_id is not None:
        programs = programs.filter(pk=program_id)
    return programs.order_by("pk")


def thresholds(program: LoyaltyProgram, *, now: datetime) -> tuple[datetime, datetime]:
    """(warning, expiration): cards last active before these are due for each."""
    days = program.points_expiration_days or 0
    return now - timedelta(days=days - WARNING_DAYS), now - timedelta(days=days)


def _cards_with_points(
    program: LoyaltyProgram, card_ids: list[int] | None
) -> QuerySet[LoyaltyCard]:
    cards = LoyaltyCard.objects.filter(
        merchant_id=program.merchant_id, is_active=True, points_balance__gt=0
    )
    return cards if card_ids is None else cards.filter(pk__in=card_ids)


def cards_due_for_warning(
    program: LoyaltyProgram, *, now: datetime, card_ids: list[int] | None = None
) -> QuerySet[LoyaltyCard]:
    """Cards in the 14-day window before expiration, not yet warned in this inactivity cycle."""
    warning_threshold, expiration_threshold = thresholds(program, now=now)
    return _cards_with_points(program, card_ids).filter(
        Q(last_expiration_warning_at__isnull=True)
        | Q(last_expiration_warning_at__lt=F("last_activity_at")),
        last_activity_at__lt=warning_threshold,
        last_activity_at__gte=expiration_threshold,
    )


def cards_due_for_expiration(
    program: LoyaltyProgram, *, now: datetime, card_ids: list[int] | None = None
) -> QuerySet[LoyaltyCard]:
    """Cards whose points expire now: inactive for longer than the program allows."""
    _, expiration_threshold = thresholds(program, now=now)
    return _cards_with_points(program, card_ids).filter(last_activity_at__lt=expiration_threshold)


@dataclass(frozen=True, kw_only=True)
class CardOutlook:
    """What a run now would do to one card."""

    #: "expire", "warn" or "keep".
    verdict: str
    #: When its points expire under the first program to expire them; None: no program does.
    expires_at: datetime | None
    #: Programs (ids) under which the card is expired, or warned, by a run now.
    expire_in: frozenset[int] = frozenset()
    warn_in: frozenset[int] = frozenset()
    #: Days of a program whose dates overflow (stored before the bound): the run skips
    #: and flags it, so the card is left alone; None when no such program applies.
    out_of_range_days: int | None = None


def expiration_outlook(cards: list[LoyaltyCard], *, now: datetime) -> dict[int, CardOutlook]:
    """Per card (id), what a run now would do, by the selectors the run's dry run uses."""
    ids = [card.pk for card in cards]
    expire: dict[int, set[int]] = {pk: set() for pk in ids}
    warn: dict[int, set[int]] = {pk: set() for pk in ids}
    shortest: dict[int, int] = {}  # merchant -> fewest expiration days of its programs
    out_of_range: dict[int, int] = {}  # merchant -> days of its program that overflow
    for program in expiring_programs().filter(merchant_id__in={c.merchant_id for c in cards}):
        days = program.points_expiration_days or 0
        try:
            thresholds(program, now=now)
        except OverflowError:
            out_of_range[program.merchant_id] = days
            continue
        shortest[program.merchant_id] = min(days, shortest.get(program.merchant_id, days))
        for pk in cards_due_for_expiration(program, now=now, card_ids=ids).values_list(
            "pk", flat=True
        ):
            expire[pk].add(program.pk)
        for pk in cards_due_for_warning(program, now=now, card_ids=ids).values_list(
            "pk", flat=True
        ):
            warn[pk].add(program.pk)
    outlook = {}
    for card in cards:
        days = shortest.get(card.merchant_id)
        verdict = "expire" if expire[card.pk] else "warn" if warn[card.pk] else "keep"
        outlook[card.pk] = CardOutlook(
            verdict=verdict,
            expires_at=None if days is None else card.last_activity_at + timedelta(days=days),
            expire_in=frozenset(expire[card.pk]),
            warn_in=frozenset(warn[card.pk]),
            out_of_range_days=None if days is not None else out_of_range.get(card.merchant_id),
        )
    return outlook
