"""loyalty.expire_points: warnings once per cycle, exact expiration, ledger invariant, reruns."""

import random
from datetime import date, timedelta

import pytest
import time_machine
from django.template import TemplateDoesNotExist, TemplateSyntaxError

from jobs.models import Notification
from loyalty.models import LoyaltyCard, LoyaltyTransaction
from loyalty.services.expiration import expire_points
from tests.loyalty.conftest import NOW, ledger_violations

pytestmark = pytest.mark.django_db


def test_expire_points__warns_cards_within_the_lead_and_past_due_cards_first(
    frozen_now, program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    on_time = card_factory(program, points=120, inactive_days=351)  # due 2026-03-15
    late = card_factory(program, points=40, inactive_days=355)  # due 03-11, found late
    fresh = card_factory(program, points=50, inactive_days=300)
    past_due = card_factory(program, points=80, inactive_days=400)  # never warned
    expired = card_factory(program, points=70, inactive_days=400, warned_days_ago=14)
    empty = card_factory(program, points=0, inactive_days=355)
    sms_only = card_factory(program, points=30, inactive_days=352, email="", phone="+15550001")
    nobody = card_factory(program, points=20, inactive_days=352, email="", phone="")

    result = expire_points()

    assert result == {
        "status": "success",
        "dry_run": False,
        "programs_processed": 1,
        "cards_processed": 1,
        "points_expired": 70,
        "warnings_sent": 4,
        "unreachable": 1,
    }
    warned = set(
        LoyaltyCard.objects.filter(last_expiration_warning_at=NOW).values_list("pk", flat=True)
    )
    assert warned == {on_time.pk, late.pk, past_due.pk, sms_only.pk, nobody.pk}
    assert fresh.pk not in warned and expired.pk not in warned and empty.pk not in warned
    # Every warning gives the full 14 days: the late and past-due cards expire a lead later.
    promised = dict(LoyaltyCard.objects.filter(pk__in=warned).values_list("pk", "points_expire_on"))
    assert set(promised.values()) == {date(2026, 3, 15)}
    assert LoyaltyCard.objects.get(pk=past_due.pk).points_balance == 80
    warning = Notification.objects.get(
        template="loyalty/notifications/points_expiring", recipient=late.customer.email
    )
    assert warning.subject == f"{program.merchant.name}: 40 points expire on 2026-03-15"
    sms = Notification.objects.get(template="loyalty/notifications/points_expiring", channel="sms")
    assert sms.recipient == "+15550001"
    expired_note = Notification.objects.get(template="loyalty/notifications/points_expired")
    assert expired_note.recipient == expired.customer.email
    assert "after 365 days without activity" in expired_note.body


def test_expire_points__warns_once_per_cycle_and_again_after_new_activity(
    program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    with time_machine.travel(NOW, tick=False):
        card = card_factory(program, points=100, inactive_days=352)
        assert expire_points()["warnings_sent"] == 1
    expired_on = []
    for day in range(1, 15):  # every night until the card expires: no second warning
        with time_machine.travel(NOW + timedelta(days=day), tick=False):
            result = expire_points()
            assert result["warnings_sent"] == 0, day
            expired_on += [day] * result["cards_processed"]
    assert expired_on == [14]  # 352 + 14 days > 365 days of inactivity
    assert Notification.objects.filter(template__endswith="points_expiring").count() == 1

    # New activity starts a new cycle: one new warning when that cycle reaches its window.
    later = NOW + timedelta(days=20)
    LoyaltyTransaction.objects.create(
        card=card,
        merchant=program.merchant,
        transaction_type="points_earned",
        points_delta=40,
        points_balance_after=40,
        transaction_at=later,
    )
    LoyaltyCard.objects.filter(pk=card.pk).update(points_balance=40, last_activity_at=later)
    with time_machine.travel(later + timedelta(days=355), tick=False):
        assert expire_points()["warnings_sent"] == 1
        assert expire_points()["warnings_sent"] == 0
    assert Notification.objects.filter(template__endswith="points_expiring").count() == 2
    assert ledger_violations() == []


def test_expire_points__is_exact_to_the_point_and_keeps_the_ledger_invariant(
    frozen_now, program_factory, card_factory
):
    rng = random.Random(4)
    program = program_factory(expiration_days=180)
    other = program_factory(expiration_days=None)  # never expires
    cards = []
    for _ in range(300):
        inactive_days = rng.uniform(0, 400)
        cards.append(
            card_factory(
                program,
                points=rng.randint(0, 5000),
                inactive_days=inactive_days,
                stamp_count=rng.randint(0, 9),
                # Warned on time, 14 days before the due day, as nightly runs would have.
                warned_days_ago=inactive_days - 166 if inactive_days > 166 else None,
            )
        )
    untouched = [card_factory(other, points=999, inactive_days=1000) for _ in range(5)]
    card_factory(program, points=500, inactive_days=500, is_active=False)
    due = {
        c.pk: c
        for c in cards
        # Due on the 180th calendar day after the last activity.
        if c.points_balance > 0 and c.last_activity_at.date() + timedelta(days=180) <= NOW.date()
    }

    result = expire_points(chunk_size=37)

    assert result["cards_processed"] == len(due)
    assert result["points_expired"] == sum(c.points_balance for c in due.values())
    assert ledger_violations() == []
    for card in LoyaltyCard.objects.filter(pk__in=due):
        assert (card.points_balance, card.total_points_voided) == (0, due[card.pk].points_balance)
    rows = LoyaltyTransaction.objects.filter(transaction_type="points_expired")
    assert rows.count() == len(due)
    for row in rows:
        before = due[row.card_id]
        assert (row.points_delta, row.points_balance_after) == (-before.points_balance, 0)
        assert (row.stamps_delta, row.stamps_balance_after) == (0, before.stamp_count)
        assert row.notes == "Points expired after 180 days of inactivity"
        assert row.transaction_at == NOW and row.store_id is None
        assert row.merchant_id == program.merchant_id
    assert all(LoyaltyCard.objects.get(pk=c.pk).points_balance == 999 for c in untouched)


def test_expire_points__rerun_the_same_day_changes_nothing(
    frozen_now, program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    for days in (10, 355, 360):
        card_factory(program, points=100, inactive_days=days)
    for days in (366, 500):
        card_factory(program, points=100, inactive_days=days, warned_days_ago=15)
    first = expire_points()
    snapshot = list(LoyaltyCard.objects.order_by("pk").values())
    counts = (LoyaltyTransaction.objects.count(), Notification.objects.count())

    again = expire_points()

    assert (first["cards_processed"], first["warnings_sent"]) == (2, 2)
    assert (again["cards_processed"], again["points_expired"], again["warnings_sent"]) == (0, 0, 0)
    assert list(LoyaltyCard.objects.order_by("pk").values()) == snapshot
    assert (LoyaltyTransaction.objects.count(), Notification.objects.count()) == counts


def test_expire_points__dry_run_counts_and_writes_nothing(
    frozen_now, program_factory, card_factory
):
    program = program_factory(expiration_days=365)
    for days in (355, 360):
        card_factory(program, points=10, inactive_days=days)
    for days in (366, 500):
        card_factory(program, points=10, inactive_days=days, warned_days_ago=20)

    preview = expire_points(dry_run=True)

    assert (preview["warnings_sent"], preview["cards_processed"], preview["points_expired"]) == (
        2,
        2,
        20,
    )
    assert not LoyaltyTransaction.objects.filter(transaction_type="points_expired").exists()
    assert not LoyaltyCard.objects.filter(last_expiration_warning_at=NOW).exists()
    assert not Notification.objects.exists()
    real = expire_points()
    assert (real["warnings_sent"], real["cards_processed"], real["points_expired"]) == (2, 2, 20)


def test_expire_points__a_warning_that_cannot_be_rendered_leaves_its_cards_for_the_next_run(
    frozen_now, program_factory, card_factory, template_override
):
    program = program_factory(expiration_days=365)
    cards = [card_factory(program, points=10, inactive_days=355) for _ in range(7)]
    template_override("loyalty/notifications/points_expiring.subject.txt", "{% broken_tag %}")

    with pytest.raises(TemplateSyntaxError):
        expire_points(chunk_size=3)

    assert not LoyaltyCard.objects.filter(last_expiration_warning_at__isnull=False).exists()
    assert not Notification.objects.exists()
    template_override(
        "loyalty/notifications/points_expiring.subject.txt",
        "{{ merchant_name }}: {{ points }} points expire on {{ expiration_date }}",
    )
    assert expire_points(chunk_size=3)["warnings_sent"] == 7
    assert (
        LoyaltyCard.objects.filter(
            pk__in=[c.pk for c in cards], last_expiration_warning_at=NOW
        ).count()
        == 7
    )
    assert Notification.objects.filter(template__endswith="points_expiring").count() == 7


def test_expire_points__a_card_and_its_message_commit_together(
    frozen_now, program_factory, card_factory, template_override
):
    """The chunk whose message fails rolls back whole; earlier chunks stay; a rerun finishes."""
    program = program_factory(expiration_days=365)
    # Walk order is oldest first: chunks of 2 are (15, 14), (13, 12), (11, 10) points.
    cards = {
        10 + i: card_factory(program, points=10 + i, inactive_days=400 + i, warned_days_ago=30)
        for i in range(6)
    }
    body = "loyalty/notifications/points_expired.txt"
    template_override(body, '{% if points == 12 %}{% include "missing.txt" %}{% endif %}gone')

    with pytest.raises(TemplateDoesNotExist):
        expire_points(chunk_size=2)

    balances = dict(LoyaltyCard.objects.values_list("points_balance", "pk"))
    assert sorted(balances) == [0, 10, 11, 12, 13]  # 15 and 14 expired, the rest not
    assert set(Notification.objects.values_list("dedup_key", flat=True)) == {
        f"points_expired:{cards[p].pk}:{cards[p].last_activity_at:%Y%m%dT%H%M%S}" for p in (15, 14)
    }
    assert ledger_violations() == []

    template_override(body, "gone")
    result = expire_points(chunk_size=2)

    assert (result["cards_processed"], result["points_expired"]) == (4, 10 + 11 + 12 + 13)
    assert Notification.objects.filter(template__endswith="points_expired").count() == 6
    assert not LoyaltyCard.objects.filter(points_balance__gt=0).exists()
    assert ledger_violations() == []


def test_expire_points__only_the_given_cards(frozen_now, program_factory, card_factory):
    program = program_factory(expiration_days=365)
    chosen, other = (
        card_factory(program, points=10, inactive_days=400, warned_days_ago=30) for _ in range(2)
    )

    result = expire_points(card_ids=[chosen.pk])

    assert result["cards_processed"] == 1
    other.refresh_from_db()
    assert other.points_balance == 10
