"""A year and two months of nightly runs with the changes a business makes meanwhile.

Four merchants in four zones, cards idle since before the first run (a first
deployment), customers who come back, offline sales uploaded late, and on given nights:
a program shortened, one paused and re-activated, one lengthened, a lead changed, a
merchant's second program replacing the first, three nights with no run at all. After
every run: no card expired without a warning for its cycle at least the lead old, no
customer active within the lead warned, and a rerun the same night changes nothing. At
the end the ledger is balanced.
"""

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from loyalty.models import LoyaltyCard, LoyaltyProgram, LoyaltyTransaction
from loyalty.services.expiration import expire_points
from tests.loyalty.conftest import earn, ledger_violations

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
NIGHTS = 420
CARDS_PER_MERCHANT = 40
#: Nights the cluster was down: no run at all.
DOWN = {300, 301, 302}
#: Nights a second run follows the first (a retry, an operator): it must change nothing.
RERUN_EVERY = 37


def test_a_year_of_nights__no_expiry_without_a_prior_warning_and_the_ledger_balanced(
    program_factory, card_factory
):
    rng = random.Random(27)
    programs = {
        "A": program_factory(expiration_days=365, timezone="America/Los_Angeles"),
        "B": program_factory(expiration_days=30, timezone="Asia/Tokyo"),
        "C": program_factory(expiration_days=90, warning_days=7, timezone="Europe/Paris"),
        "D": program_factory(expiration_days=7, timezone="Australia/Sydney"),
    }
    cards: list[LoyaltyCard] = []
    for program in programs.values():
        for n in range(CARDS_PER_MERCHANT):
            cards.append(
                card_factory(
                    program,
                    points=rng.randint(1, 500),
                    inactive_days=rng.uniform(0, 500),
                    email="" if n % 20 == 0 else None,  # a few customers cannot be reached
                    now=START,
                )
            )
    zones = {p.merchant_id: ZoneInfo(p.merchant.timezone) for p in programs.values()}
    changes = _changes(programs)
    #: (card, cycle) -> (warned at, lead then, day promised)
    warnings: dict[tuple[int, datetime], tuple[datetime, int, date]] = {}
    expiries = 0

    for night_index in range(NIGHTS):
        night = START + timedelta(days=night_index)
        with time_machine.travel(night, tick=False):
            if night_index in changes:
                changes[night_index]()
            _customers_shop(rng, cards, night=night)
            if night_index in DOWN:
                continue
            result = expire_points()
            leads = {
                p.merchant_id: p.warning_lead_days
                for p in LoyaltyProgram.objects.filter(is_active=True)
            }
            for pk, merchant_id, cycle, promised in LoyaltyCard.objects.filter(
                last_expiration_warning_at=night
            ).values_list("pk", "merchant_id", "expiration_warning_cycle_at", "points_expire_on"):
                lead = leads[merchant_id]
                today = night.astimezone(zones[merchant_id]).date()
                assert (today - cycle.astimezone(zones[merchant_id]).date()).days >= lead, (
                    f"night {night_index}: card {pk} warned while active within the lead"
                )
                assert promised >= today + timedelta(days=lead)
                warnings[(pk, cycle)] = (night, lead, promised)
            for pk, merchant_id, cycle in LoyaltyTransaction.objects.filter(
                transaction_type=LoyaltyTransaction.Type.POINTS_EXPIRED, transaction_at=night
            ).values_list("card_id", "merchant_id", "card__last_activity_at"):
                assert (pk, cycle) in warnings, (
                    f"night {night_index}: card {pk} expired with no warning for its cycle"
                )
                warned_at, lead, promised = warnings[(pk, cycle)]
                assert night - warned_at >= timedelta(days=lead), (
                    f"night {night_index}: card {pk} expired {night - warned_at} after its"
                    f" warning, lead {lead} days"
                )
                assert night.astimezone(zones[merchant_id]).date() >= promised
                expiries += 1
            assert (
                result["cards_processed"]
                == LoyaltyTransaction.objects.filter(
                    transaction_type=LoyaltyTransaction.Type.POINTS_EXPIRED, transaction_at=night
                ).count()
            )
            if night_index % RERUN_EVERY == 0:
                again = expire_points()
                assert (again["warnings_sent"], again["unreachable"], again["cards_processed"]) == (
                    0,
                    0,
                    0,
                )

    assert ledger_violations() == []
    # The year exercised the rule: many warnings, many expiries, each expiry warned.
    assert expiries >= 100 and len(warnings) > expiries


def _changes(programs: dict[str, LoyaltyProgram]) -> dict[int, Callable[[], None]]:
    """What the merchants change, by night."""

    def update(name: str, **fields) -> Callable[[], None]:
        return lambda: LoyaltyProgram.objects.filter(pk=programs[name].pk).update(**fields)

    def second_program() -> None:
        first = programs["D"]
        LoyaltyProgram.objects.filter(pk=first.pk).update(is_active=False)
        programs["D"] = LoyaltyProgram.objects.create(
            merchant=first.merchant, name="new points", points_expiration_days=60
        )

    return {
        40: update("A", points_expiration_days=30),  # 365 -> 30: idle cards past due at once
        75: update("B", is_active=False),  # paused for 60 nights
        135: update("B", is_active=True),
        100: update("A", points_expiration_days=120),  # lengthened: warned dates now early
        160: update("C", expiration_warning_days=30),
        200: second_program,
        250: update("A", points_expiration_days=14),  # lead 14 asked, 7 used
    }


def _customers_shop(rng: random.Random, cards: list[LoyaltyCard], *, night: datetime) -> None:
    """A few sales since the last night; now and then an offline sale uploaded late, dated
    before the card's last warning."""
    for card in cards:
        roll = rng.random()
        if roll < 0.015:
            earn(card, rng.randint(1, 40), at=night - timedelta(hours=rng.uniform(1, 20)))
        elif roll < 0.02:
            warned_at = LoyaltyCard.objects.values_list(
                "last_expiration_warning_at", flat=True
            ).get(pk=card.pk)
            if warned_at is not None:
                earn(card, rng.randint(1, 40), at=warned_at - timedelta(days=rng.uniform(1, 3)))
