"""The warning rule as a business meets it: short programs, changed programs, late uploads.

Every night is a run at 02:00 UTC on a frozen clock. Points are never voided without a
warning for the card's current cycle that is at least the program's lead old.
"""

import importlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from jobs.models import Notification
from loyalty.models import LoyaltyCard, LoyaltyProgram
from loyalty.services.expiration import expire_points
from tests.loyalty.conftest import NOW, earn, ledger_violations

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("loyalty.migrations.0005_warning_cycle_merchant_zone")
WARNING = "loyalty/notifications/points_expiring"
EXPIRED = "loyalty/notifications/points_expired"


def nights(first: datetime, count: int) -> Iterator[datetime]:
    """`count` nightly runs from `first`, each on a frozen clock."""
    for day in range(count):
        moment = first + timedelta(days=day)
        with time_machine.travel(moment, tick=False):
            yield moment


def warnings_to(card: LoyaltyCard) -> list[Notification]:
    return list(
        Notification.objects.filter(template=WARNING, recipient=card.customer.email).order_by("pk")
    )


def balance(card: LoyaltyCard) -> int:
    return LoyaltyCard.objects.values_list("points_balance", flat=True).get(pk=card.pk)


def test_seven_day_program__a_daily_customer_gets_no_warning_in_14_nights(
    program_factory, card_factory
):
    program = program_factory(expiration_days=7)  # lead 14 asked, 3 used (half of 7, down)
    daily = card_factory(program, points=10, inactive_days=0.5)
    idle = card_factory(program, points=10, inactive_days=0.5)
    expired_on = None

    for night in nights(NOW, 14):
        earn(daily, 1, at=night + timedelta(hours=7))  # shops every morning
        result = expire_points()
        if result["cards_processed"]:
            expired_on = night

    assert warnings_to(daily) == [] and balance(daily) == 24
    (warning,) = warnings_to(idle)  # one warning, 3 days ahead, then the expiry
    assert warning.subject.endswith("10 points expire on 2026-03-07")
    assert warning.created_at == NOW + timedelta(days=3)
    assert expired_on == NOW + timedelta(days=6) and balance(idle) == 0
    assert ledger_violations() == []


def test_shortened_program__past_due_card_warned_first_and_expired_a_lead_later(
    program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    idle_200 = card_factory(program, points=300, inactive_days=200)
    with time_machine.travel(NOW, tick=False):
        assert expire_points()["warnings_sent"] == 0

    LoyaltyProgram.objects.filter(pk=program.pk).update(points_expiration_days=30)
    history = []
    for night in nights(NOW + timedelta(days=1), 15):
        result = expire_points()
        history.append((night.date(), result["warnings_sent"], result["cards_processed"]))

    assert history[0] == (date(2026, 3, 2), 1, 0)  # warned the first night, not expired
    assert all(expired == 0 for _, _, expired in history[:14])
    assert history[14] == (date(2026, 3, 16), 0, 1)  # 14 days after the warning
    (warning,) = warnings_to(idle_200)
    assert "expire on 2026-03-16" in warning.subject
    assert ledger_violations() == []


def test_shortened_program__a_warned_date_is_honoured(program_factory, card_factory):
    program = program_factory(expiration_days=365)
    card = card_factory(program, points=50, inactive_days=346)  # due 2026-03-20
    with time_machine.travel(NOW + timedelta(days=5), tick=False):  # 2026-03-06: warned
        assert expire_points()["warnings_sent"] == 1
    assert "expire on 2026-03-20" in warnings_to(card)[0].subject

    LoyaltyProgram.objects.filter(pk=program.pk).update(points_expiration_days=30)
    expired_on = [
        n.date() for n in nights(NOW + timedelta(days=6), 20) if expire_points()["cards_processed"]
    ]

    assert expired_on == [date(2026, 3, 20)]  # not 10 days before the date it was told
    assert len(warnings_to(card)) == 1


def test_lengthened_program__a_new_warning_before_the_new_date(program_factory, card_factory):
    program = program_factory(expiration_days=30)
    card = card_factory(program, points=50, inactive_days=16)  # due 2026-03-15
    with time_machine.travel(NOW, tick=False):
        assert expire_points()["warnings_sent"] == 1

    LoyaltyProgram.objects.filter(pk=program.pk).update(points_expiration_days=60)
    events = {}
    for night in nights(NOW + timedelta(days=1), 45):
        result = expire_points()
        if result["warnings_sent"] or result["cards_processed"]:
            events[night.date()] = (result["warnings_sent"], result["cards_processed"])

    # Not voided on the old date (03-15); warned again 14 days before the new one (04-14).
    assert events == {date(2026, 3, 31): (1, 0), date(2026, 4, 14): (0, 1)}
    assert [w.subject[-10:] for w in warnings_to(card)] == ["2026-03-15", "2026-04-14"]


def test_reactivated_program__cards_past_due_meanwhile_are_warned_first(
    program_factory, card_factory
):
    program = program_factory(expiration_days=30, is_active=False)  # paused for 60 days
    cards = [card_factory(program, points=10, inactive_days=20 + i) for i in range(60)]

    LoyaltyProgram.objects.filter(pk=program.pk).update(is_active=True)
    with time_machine.travel(NOW, tick=False):
        first = expire_points()

    assert (first["warnings_sent"], first["cards_processed"]) == (60, 0)
    assert {
        c.points_expire_on for c in LoyaltyCard.objects.filter(pk__in=[c.pk for c in cards])
    } == {date(2026, 3, 15)}
    with time_machine.travel(NOW + timedelta(days=13), tick=False):
        assert expire_points()["cards_processed"] == 0
    with time_machine.travel(NOW + timedelta(days=14), tick=False):
        assert expire_points()["cards_processed"] == 60


def test_first_deployment__past_due_cards_warned_first_and_current_warnings_kept(
    frozen_now, program_factory, card_factory
):
    """Migration 0005 keeps a warning recorded without a cycle (only its timestamp) when it
    was sent in the card's present cycle; a card past due with no such warning (or one
    about an earlier cycle) is warned first."""
    program = program_factory(expiration_days=365)
    old = {"expiration_warning_cycle_at": None, "points_expire_on": None}
    warned = card_factory(  # warned 5 days ago, no cycle recorded: "expire on 2026-03-10"
        program, points=10, inactive_days=356, last_expiration_warning_at=NOW - timedelta(days=5)
    )
    never = card_factory(program, points=20, inactive_days=400)
    # Warned last year, two days after its last sale: that warning is about an earlier cycle.
    hidden = card_factory(
        program, points=30, inactive_days=400, last_expiration_warning_at=NOW - timedelta(days=398)
    )
    LoyaltyCard.objects.update(**old)
    with connection.cursor() as cursor:
        cursor.execute(MIGRATION.KEEP_CURRENT_WARNINGS)

    result = expire_points()

    assert (result["warnings_sent"], result["cards_processed"]) == (2, 0)
    assert warnings_to(warned) == []  # not told twice
    assert LoyaltyCard.objects.get(pk=warned.pk).points_expire_on == date(2026, 3, 10)
    assert len(warnings_to(never)) == len(warnings_to(hidden)) == 1
    with time_machine.travel(datetime(2026, 3, 10, 2, 0, tzinfo=UTC), tick=False):
        assert expire_points()["cards_processed"] == 1
    with time_machine.travel(datetime(2026, 3, 15, 2, 0, tzinfo=UTC), tick=False):
        assert expire_points()["cards_processed"] == 2


def test_late_upload__an_offline_sale_dated_before_the_warning_does_not_hide_the_next_cycle(
    program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    card = card_factory(program, points=100, inactive_days=351)  # due 2026-03-15
    with time_machine.travel(NOW, tick=False):
        assert expire_points()["warnings_sent"] == 1
    # The next day a sale made offline two days before the warning is uploaded.
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        earn(card, 25, at=NOW - timedelta(days=2))
        assert expire_points()["cards_processed"] == 0
    offline_day = (NOW - timedelta(days=2)).date()

    events = {}
    for night in nights(datetime(2027, 2, 10, 2, 0, tzinfo=UTC), 30):
        result = expire_points()
        if result["warnings_sent"] or result["cards_processed"]:
            events[night.date()] = (result["warnings_sent"], result["cards_processed"])

    due = offline_day + timedelta(days=365)
    assert events == {due - timedelta(days=14): (1, 0), due: (0, 1)}
    assert [w.subject[-10:] for w in warnings_to(card)] == ["2026-03-15", due.isoformat()]
    assert ledger_violations() == []


def test_merchant_timezone__dates_and_day_counts_are_the_merchants(program_factory, card_factory):
    program = program_factory(expiration_days=365, timezone="America/Los_Angeles")
    # Last used 2025-03-14 at 18:00 in Los Angeles (01:00 UTC the next day): due 2026-03-14.
    card = card_factory(
        program, points=10, inactive_days=0, now=datetime(2025, 3, 15, 1, 0, tzinfo=UTC)
    )

    # The 02:00 UTC run of 2026-02-28 is 18:00 on 02-27 in Los Angeles: not yet 14 days before.
    with time_machine.travel(datetime(2026, 2, 28, 2, 0, tzinfo=UTC), tick=False):
        assert expire_points()["warnings_sent"] == 0
    with time_machine.travel(datetime(2026, 3, 1, 2, 0, tzinfo=UTC), tick=False):
        assert expire_points()["warnings_sent"] == 1
    (warning,) = warnings_to(card)
    assert warning.subject.endswith("expire on 2026-03-14")  # UTC would have said 03-15
    with time_machine.travel(datetime(2026, 3, 14, 2, 0, tzinfo=UTC), tick=False):  # 03-13 LA
        assert expire_points()["cards_processed"] == 0
    with time_machine.travel(datetime(2026, 3, 15, 2, 0, tzinfo=UTC), tick=False):  # 03-14 LA
        assert expire_points()["cards_processed"] == 1


def test_unreachable_customers__warned_and_counted_apart(frozen_now, program_factory, card_factory):
    program = program_factory(expiration_days=365)
    card_factory(program, points=10, inactive_days=351)
    card_factory(program, points=10, inactive_days=351, email="", phone="+15550002")
    card_factory(program, points=10, inactive_days=351, email="", phone="")

    preview = expire_points(dry_run=True)
    result = expire_points()

    assert (preview["warnings_sent"], preview["unreachable"]) == (2, 1)
    assert (result["warnings_sent"], result["unreachable"]) == (2, 1)
    assert Notification.objects.filter(template=WARNING).count() == 2
    assert LoyaltyCard.objects.filter(last_expiration_warning_at=frozen_now).count() == 3


def test_one_active_program_per_merchant(program_factory):
    program = program_factory(expiration_days=365)

    with pytest.raises(IntegrityError), transaction.atomic():
        LoyaltyProgram.objects.create(merchant=program.merchant, name="second", is_active=True)
    # A second, inactive program is allowed; activating it needs the first one paused.
    second = LoyaltyProgram.objects.create(
        merchant=program.merchant, name="second", is_active=False, points_expiration_days=30
    )
    LoyaltyProgram.objects.filter(pk=program.pk).update(is_active=False)
    LoyaltyProgram.objects.filter(pk=second.pk).update(is_active=True)


def test_lead_is_at_most_half_the_period(program_factory):
    program = program_factory(expiration_days=20, warning_days=14)

    assert program.warning_lead_days == 10  # the run never gives more than half
    with pytest.raises(ValidationError, match="At most 10 days"):
        program.full_clean()  # and the admin refuses to store it


def test_migration__two_active_programs_stop_it_naming_them(program_factory):
    """Which program governs a merchant's cards is the merchant's call, not a migration's."""
    from django.apps import apps

    first = program_factory(expiration_days=365)
    with connection.cursor() as cursor:  # a row from before the constraint (rolled back)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DROP INDEX loyalty_program_one_active_per_merchant")  # a partial unique
    second = LoyaltyProgram.objects.create(merchant=first.merchant, name="second")

    with pytest.raises(RuntimeError) as refused:
        MIGRATION.refuse_two_active_programs(apps, None)

    assert str(refused.value) == (
        "a merchant may have one active program; deactivate all but one of each merchant's"
        f" (merchant {first.merchant_id}: program {first.pk}, merchant {first.merchant_id}:"
        f" program {second.pk}), then migrate again"
    )
