"""Reads of the loyalty app with names: which programs expire points, which cards are due.

The expiration rule (docs/loyalty.md) in one place: the dry run, the admin's "Expire now"
confirmation and the program form's preview ask here; the chunk statements of
loyalty.sql apply the same rule while they lock. A warning is about one inactivity cycle
(the card's `last_activity_at` when it was sent) and promises a day, never sooner than
the lead; a card is expired only once its current cycle's promised day has come.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import DateField, ExpressionWrapper, F, Q, QuerySet, Value
from django.db.models.functions import TruncDate

from loyalty.models import LoyaltyCard, LoyaltyProgram


def expiring_programs(*, program_id: int | None = None) -> QuerySet[LoyaltyProgram]:
    """Active programs whose points expire, with their merchant."""
    programs = LoyaltyProgram.objects.filter(
        is_active=True, points_expiration_days__gt=0
    ).select_related("merchant")
    if program_id is not None:
        programs = programs.filter(pk=program_id)
    return programs.order_by("pk")


@dataclass(frozen=True, kw_only=True)
class ExpirationDay:
    """One program's rule on one run's day, in the merchant's calendar."""

    #: The merchant's IANA zone.
    zone: str
    #: The run's day on the merchant's clock.
    today: date
    #: The program's expiration period and the notice it gives.
    days: int
    lead_days: int
    #: Cards last active before this moment are due for their warning, or past it.
    warn_before: datetime
    #: Cards last active before this moment are past their due day.
    expire_before: datetime

    def due_on(self, last_activity_at: datetime) -> date:
        """The day a cycle's points expire by the program alone."""
        return last_activity_at.astimezone(self.zone_info).date() + timedelta(days=self.days)

    def promise(self, last_activity_at: datetime) -> date:
        """The day a warning sent today promises: the due day, never sooner than the lead."""
        return max(self.due_on(last_activity_at), self.today + timedelta(days=self.lead_days))

    def start_of(self, day: date) -> datetime:
        """The first moment of `day` on the merchant's clock."""
        return datetime.combine(day, time(0), tzinfo=self.zone_info)

    @property
    def zone_info(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


def expiration_day(program: LoyaltyProgram, *, now: datetime) -> ExpirationDay:
    """The program's thresholds for a run at `now` (OverflowError for absurd periods)."""
    zone = ZoneInfo(program.merchant.timezone)
    today = now.astimezone(zone).date()
    days = program.points_expiration_days or 0
    lead = program.warning_lead_days
    return ExpirationDay(
        zone=program.merchant.timezone,
        today=today,
        days=days,
        lead_days=lead,
        # Active on day D: warned once D + days - lead <= today, i.e. D < today - days + lead + 1.
        warn_before=datetime.combine(today - timedelta(days=days - lead - 1), time(0), zone),
        expire_before=datetime.combine(today - timedelta(days=days - 1), time(0), zone),
    )


def _due_on(day: ExpirationDay) -> ExpressionWrapper:
    return ExpressionWrapper(
        TruncDate("last_activity_at", tzinfo=day.zone_info) + Value(timedelta(days=day.days)),
        output_field=DateField(),
    )


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
    """Cards within the lead of their due day (or past it) with no warning for this cycle."""
    day = expiration_day(program, now=now)
    return _cards_with_points(program, card_ids).filter(
        Q(expiration_warning_cycle_at__isnull=True)
        | Q(points_expire_on__isnull=True)
        | ~Q(expiration_warning_cycle_at=F("last_activity_at"))
        | Q(points_expire_on__lt=_due_on(day)),
        last_activity_at__lt=day.warn_before,
    )


def cards_due_for_expiration(
    program: LoyaltyProgram, *, now: datetime, card_ids: list[int] | None = None
) -> QuerySet[LoyaltyCard]:
    """Cards past their due day whose warning for this cycle promised a day that has come."""
    day = expiration_day(program, now=now)
    return _cards_with_points(program, card_ids).filter(
        expiration_warning_cycle_at=F("last_activity_at"),
        points_expire_on__gte=_due_on(day),
        last_activity_at__lt=day.expire_before,
        points_expire_on__lte=day.today,
    )


@dataclass(frozen=True, kw_only=True)
class CardOutlook:
    """What a run now would do to one card (under its merchant's one active program)."""

    #: "expire", "warn" or "keep".
    verdict: str
    #: The day (merchant's zone) its points expire if nothing changes: the warned day if
    #: the card has a current warning, else the due day or, once warned, a lead later.
    expires_on: date | None
    #: Days of a program whose dates overflow (stored before the bound): the run skips
    #: and flags it, so the card is left alone; None when no such program applies.
    out_of_range_days: int | None = None


def expiration_outlook(cards: list[LoyaltyCard], *, now: datetime) -> dict[int, CardOutlook]:
    """Per card (id), what a run now would do, by the selectors the run's dry run uses."""
    ids = [card.pk for card in cards]
    expire: set[int] = set()
    warn: set[int] = set()
    rule: dict[int, ExpirationDay] = {}  # merchant -> its active program's rule
    out_of_range: dict[int, int] = {}  # merchant -> days of its program that overflow
    for program in expiring_programs().filter(merchant_id__in={c.merchant_id for c in cards}):
        try:
            rule[program.merchant_id] = expiration_day(program, now=now)
        except OverflowError:
            out_of_range[program.merchant_id] = program.points_expiration_days or 0
            continue
        for found, due in ((expire, cards_due_for_expiration), (warn, cards_due_for_warning)):
            found.update(due(program, now=now, card_ids=ids).values_list("pk", flat=True))
    outlook = {}
    for card in cards:
        day = rule.get(card.merchant_id)
        verdict = "expire" if card.pk in expire else "warn" if card.pk in warn else "keep"
        outlook[card.pk] = CardOutlook(
            verdict=verdict,
            expires_on=None if day is None else _expires_on(card, day, warned=verdict == "warn"),
            out_of_range_days=None if day is not None else out_of_range.get(card.merchant_id),
        )
    return outlook


def _expires_on(card: LoyaltyCard, day: ExpirationDay, *, warned: bool) -> date:
    if warned:
        return day.promise(card.last_activity_at)
    due = day.due_on(card.last_activity_at)
    current = card.expiration_warning_cycle_at == card.last_activity_at
    if current and card.points_expire_on is not None and card.points_expire_on >= due:
        return card.points_expire_on
    return due
