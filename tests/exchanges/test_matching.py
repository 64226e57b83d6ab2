"""Matching draws a derangement honouring exclusions, or fails clearly and changes nothing."""

import random

import pytest

from exchanges.exceptions import InvalidExchangeState, MatchingImpossible
from exchanges.models import Exchange, Exclusion, Match, Reminder
from exchanges.services.matching import draw_derangement, match_exchange
from jobs.models import Notification

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("seed", range(20))
def test_draw_derangement__nobody_draws_self_or_excluded_partner(seed):
    ids = list(range(1, 9))
    forbidden = {frozenset((1, 2)), frozenset((3, 4)), frozenset((5, 6))}

    pairs = draw_derangement(ids, forbidden, rng=random.Random(seed))

    assert sorted(pairs) == ids and sorted(pairs.values()) == ids
    assert all(g != r and frozenset((g, r)) not in forbidden for g, r in pairs.items())


def test_draw_derangement__proves_impossible_draws():
    # 1 may draw nobody: 2 and 3 are both excluded.
    with pytest.raises(MatchingImpossible, match="no draw satisfies the exclusions"):
        draw_derangement([1, 2, 3], {frozenset((1, 2)), frozenset((1, 3))}, rng=random.Random(0))
    with pytest.raises(MatchingImpossible, match="at least 2 active participants, found 1"):
        draw_derangement([1], set(), rng=random.Random(0))


def test_match_exchange__matches_active_participants_notifies_givers_plans_reminders(
    make_exchange, make_participants
):
    exchange = make_exchange(state=Exchange.State.REGISTRATION_OPEN)
    people = make_participants(exchange, 5)
    withdrawn = make_participants(exchange, 1, prefix="gone", withdrawn_at="2026-11-01T00:00Z")[0]
    Exclusion.objects.create(exchange=exchange, participant_a=people[0], participant_b=people[1])

    result = match_exchange(exchange_id=exchange.pk, rng=random.Random(1))

    exchange.refresh_from_db()
    assert exchange.state == Exchange.State.MATCHED
    matches = {m.giver_id: m.receiver_id for m in Match.objects.filter(exchange=exchange)}
    assert sorted(matches) == sorted(p.pk for p in people)
    assert withdrawn.pk not in matches.values()
    assert matches[people[0].pk] != people[1].pk and matches[people[1].pk] != people[0].pk
    assert result["notified"] == 5
    assert Notification.objects.filter(template="exchanges/notifications/match_made").count() == 5
    assert Reminder.objects.filter(exchange=exchange).count() == 3


def test_match_exchange__impossible_or_wrong_state_changes_nothing(
    make_exchange, make_participants
):
    exchange = make_exchange()
    a, b = make_participants(exchange, 2)
    Exclusion.objects.create(exchange=exchange, participant_a=a, participant_b=b)

    with pytest.raises(MatchingImpossible):
        match_exchange(exchange_id=exchange.pk)
    exchange.refresh_from_db()
    assert exchange.state == Exchange.State.DRAFT and not Match.objects.exists()

    matched = make_exchange(state=Exchange.State.MATCHED)
    with pytest.raises(InvalidExchangeState, match=f"exchange {matched.pk} is matched"):
        match_exchange(exchange_id=matched.pk)
    assert not Notification.objects.exists()
