"""Withdrawals and late joiners after the draw: nobody is reminded about a person who left,
nobody unmatched is reminded, and the organizer can draw again."""

import random
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from exchanges.exceptions import InvalidExchangeState
from exchanges.models import Exchange, Exclusion, Match, Participant
from exchanges.services.matching import draw_derangement, match_exchange
from exchanges.services.reminder_planning import plan_reminders
from exchanges.services.reminders import send_due_reminders
from exchanges.services.withdrawal import withdraw_participant
from jobs.models import JobRun, Notification
from jobs.runner import execute_queued_run
from tests.admin_helpers import post_action, staff_client

pytestmark = pytest.mark.django_db

DRAWN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PARTY = datetime(2026, 12, 18, 23, 0, tzinfo=UTC)
SEVEN_DAYS_BEFORE = PARTY - timedelta(days=7)


def draw(exchange: Exchange, pairs: list[tuple[Participant, Participant]]) -> None:
    """A known draw, as match_exchange would leave it (matched, reminders planned)."""
    for giver, receiver in pairs:
        Match.objects.create(exchange=exchange, giver=giver, receiver=receiver)
    Exchange.objects.filter(pk=exchange.pk).update(state=Exchange.State.MATCHED)
    with time_machine.travel(DRAWN, tick=False):
        plan_reminders(exchange_id=exchange.pk)


def reminders_at(moment: datetime) -> dict[str, str]:
    """Recipient -> reminder body of every reminder the sweep at `moment` queued."""
    with time_machine.travel(moment, tick=False):
        send_due_reminders()
    rows = Notification.objects.filter(template="exchanges/notifications/reminder")
    return {n.recipient: n.body for n in rows}


def test_withdrawal_after_matching__the_giver_takes_over_and_nobody_hears_of_the_withdrawn(
    make_exchange, make_participants
):
    exchange = make_exchange(exchange_at=PARTY)
    p1, p2, p3, p4 = make_participants(exchange, 4)
    draw(exchange, [(p1, p2), (p2, p3), (p3, p4), (p4, p1)])

    with time_machine.travel(DRAWN + timedelta(days=2), tick=False):
        result = withdraw_participant(participant_id=p1.pk)

    assert result["outcome"] == "repaired"
    assert set(Match.objects.values_list("giver_id", "receiver_id")) == {
        (p2.pk, p3.pk),
        (p3.pk, p4.pk),
        (p4.pk, p2.pk),  # p1's giver now gives to p1's receiver
    }
    changed = Notification.objects.get(template="exchanges/notifications/match_changed")
    assert changed.recipient == p4.email and "gift to:\n\n    Person 1\n" in changed.body
    bodies = reminders_at(SEVEN_DAYS_BEFORE)
    assert set(bodies) == {p2.email, p3.email, p4.email}
    assert not any("Person 0" in body for body in bodies.values())
    assert "You are giving a gift to Person 1." in bodies[p4.email]
    # Withdrawing twice changes nothing.
    assert withdraw_participant(participant_id=p1.pk)["outcome"] == "already withdrawn"


def test_withdrawal_of_one_of_a_pair_who_drew_each_other__the_organizer_is_told(
    make_exchange, make_participants
):
    exchange = make_exchange(exchange_at=PARTY)
    a, b, c, d = make_participants(exchange, 4)
    draw(exchange, [(a, b), (b, a), (c, d), (d, c)])

    result = withdraw_participant(participant_id=a.pk)

    assert (result["outcome"], result["reason"]) == ("rematch needed", "the two drew each other")
    told = Notification.objects.get(template="exchanges/notifications/rematch_needed")
    assert told.recipient == exchange.organizer_email
    assert "Person 1 now has nobody to give a gift to" in told.body
    bodies = reminders_at(SEVEN_DAYS_BEFORE)
    assert set(bodies) == {c.email, d.email}  # b is not reminded of a gift to nobody


def test_withdrawal_onto_an_excluded_pair__re_match_needed(make_exchange, make_participants):
    exchange = make_exchange(exchange_at=PARTY)
    a, b, c = make_participants(exchange, 3)
    Exclusion.objects.create(exchange=exchange, participant_a=c, participant_b=b)
    draw(exchange, [(a, b), (b, c), (c, a)])

    assert withdraw_participant(participant_id=a.pk)["reason"] == "the remaining pair is excluded"
    assert not Match.objects.filter(receiver=a).exists()


def test_late_joiner__not_reminded_until_the_re_match_includes_them(
    make_exchange, make_participants
):
    exchange = make_exchange(exchange_at=PARTY)
    people = make_participants(exchange, 3)
    draw(exchange, [(people[0], people[1]), (people[1], people[2]), (people[2], people[0])])
    (late,) = make_participants(exchange, 1, prefix="late")

    assert late.email not in reminders_at(SEVEN_DAYS_BEFORE)

    with time_machine.travel(SEVEN_DAYS_BEFORE + timedelta(hours=1), tick=False):
        result = match_exchange(exchange_id=exchange.pk, rematch=True, rng=random.Random(3))
    assert (result["cleared"], result["participants"]) == (3, 4)
    assert (
        Match.objects.filter(giver=late).exists() and Match.objects.filter(receiver=late).exists()
    )
    bodies = reminders_at(PARTY - timedelta(days=3))
    assert late.email in bodies and "You are giving a gift to" in bodies[late.email]


def test_rematch__only_a_matched_exchange(make_exchange, make_participants):
    draft = make_exchange()
    make_participants(draft, 3)

    with pytest.raises(InvalidExchangeState, match="only matched exchanges can be re-matched"):
        match_exchange(exchange_id=draft.pk, rematch=True)


# -- admin -------------------------------------------------------------------------------

OPERATOR = (
    ("exchanges", "view_exchange"),
    ("exchanges", "change_exchange"),
    ("exchanges", "view_participant"),
    ("exchanges", "change_participant"),
    ("jobs", "view_jobrun"),
    ("jobs", "run_job"),
)


def test_admin_rematch__asks_first_then_queues_a_re_draw_as_the_user(
    client, make_exchange, make_participants
):
    operator = staff_client(client, "olga", OPERATOR)
    exchange = make_exchange(exchange_at=PARTY)
    people = make_participants(exchange, 3)
    draw(exchange, [(people[0], people[1]), (people[1], people[2]), (people[2], people[0])])
    url = "/admin/exchanges/exchange/"

    page = post_action(operator, url, "rematch", exchange.pk)
    html = page.content.decode()
    assert page.status_code == 200 and "Draw these exchanges again?" in html
    assert "3 match(es) now, 3 active participant(s) to draw" in html
    assert not JobRun.objects.exists()

    post_action(operator, url, "rematch", exchange.pk, confirm=True)
    run = JobRun.objects.get()
    assert (run.job, run.kwargs, run.triggered_by) == (
        "exchanges.match_exchange",
        {"exchange_id": exchange.pk, "rematch": True},
        "olga",
    )
    execute_queued_run(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.result["cleared"] == 3


def test_admin_actions__not_offered_to_view_only_staff(client, make_exchange, make_participants):
    viewer = staff_client(
        client, "vera", [("exchanges", "view_exchange"), ("exchanges", "view_participant")]
    )
    exchange = make_exchange(exchange_at=PARTY)
    people = make_participants(exchange, 2)
    draw(exchange, [(people[0], people[1]), (people[1], people[0])])

    exchanges_page = viewer.get("/admin/exchanges/exchange/").content.decode()
    participants_page = viewer.get("/admin/exchanges/participant/").content.decode()
    assert 'value="rematch"' not in exchanges_page
    assert 'value="withdraw"' not in participants_page
    post_action(viewer, "/admin/exchanges/participant/", "withdraw", people[0].pk)
    assert Participant.objects.get(pk=people[0].pk).withdrawn_at is None


def test_admin_withdraw__repairs_and_says_so(client, make_exchange, make_participants):
    operator = staff_client(client, "olga", OPERATOR)
    exchange = make_exchange(exchange_at=PARTY)
    p1, p2, p3 = make_participants(exchange, 3)
    draw(exchange, [(p1, p2), (p2, p3), (p3, p1)])

    response = post_action(operator, "/admin/exchanges/participant/", "withdraw", p1.pk)

    assert response.status_code == 302
    page = operator.get(response["Location"]).content.decode()
    assert "Withdrawn: 1 repaired." in page
    assert set(Match.objects.values_list("giver_id", "receiver_id")) == {
        (p2.pk, p3.pk),
        (p3.pk, p2.pk),
    }


def _rng_drawing(ids: list[int], wanted: dict[int, int]) -> random.Random:
    """A seeded generator whose draw over `ids` (no exclusions) is `wanted`."""
    for seed in range(1000):
        if draw_derangement(ids, set(), rng=random.Random(seed)) == wanted:
            return random.Random(seed)
    raise AssertionError(f"no seed draws {wanted}")


def test_rematch_back_to_an_earlier_draw__every_giver_whose_receiver_changed_is_told(
    make_exchange, make_participants
):
    exchange = make_exchange(exchange_at=PARTY, state=Exchange.State.REGISTRATION_OPEN)
    a, b, c = make_participants(exchange, 3)
    ids = [a.pk, b.pk, c.pk]
    first = {a.pk: b.pk, b.pk: c.pk, c.pk: a.pk}
    second = {a.pk: c.pk, c.pk: b.pk, b.pk: a.pk}

    def latest_email_to(person: Participant) -> str:
        return (
            Notification.objects.filter(recipient=person.email)
            .exclude(template="exchanges/notifications/reminder")
            .latest("id")
            .body
        )

    with time_machine.travel(DRAWN, tick=False):
        match_exchange(exchange_id=exchange.pk, rng=_rng_drawing(ids, first))
    with time_machine.travel(DRAWN + timedelta(days=1), tick=False):  # two staff, one re-match each
        match_exchange(exchange_id=exchange.pk, rematch=True, rng=_rng_drawing(ids, second))
    with time_machine.travel(DRAWN + timedelta(days=1, minutes=1), tick=False):
        result = match_exchange(exchange_id=exchange.pk, rematch=True, rng=_rng_drawing(ids, first))

    assert dict(Match.objects.values_list("giver_id", "receiver_id")) == first
    assert result["notified"] == 3
    # What each giver read last is the receiver the draw holds.
    assert "gift to:\n\n    Person 1\n" in latest_email_to(a)
    assert "gift to:\n\n    Person 2\n" in latest_email_to(b)
    assert "gift to:\n\n    Person 0\n" in latest_email_to(c)


def test_withdrawal_hands_a_giver_back_a_receiver_a_re_match_took__the_giver_is_told(
    make_exchange, make_participants
):
    exchange = make_exchange(exchange_at=PARTY)
    a, b, c, d = make_participants(exchange, 4)
    draw(exchange, [(a, b), (b, c), (c, d), (d, a)])
    with time_machine.travel(DRAWN + timedelta(days=1), tick=False):
        assert withdraw_participant(participant_id=b.pk)["outcome"] == "repaired"  # a -> c
    with time_machine.travel(DRAWN + timedelta(days=2), tick=False):
        ids = [a.pk, c.pk, d.pk]
        match_exchange(
            exchange_id=exchange.pk,
            rematch=True,
            rng=_rng_drawing(ids, {a.pk: d.pk, d.pk: c.pk, c.pk: a.pk}),
        )

    with time_machine.travel(DRAWN + timedelta(days=3), tick=False):
        result = withdraw_participant(participant_id=d.pk)  # a takes d's receiver: c again

    assert (result["outcome"], result["giver_id"], result["receiver_id"]) == (
        "repaired",
        a.pk,
        c.pk,
    )
    last = Notification.objects.filter(recipient=a.email).latest("id")
    assert last.template == "exchanges/notifications/match_changed"
    assert "gift to:\n\n    Person 2\n" in last.body


@pytest.mark.parametrize("how", ["delete_selected", "delete_view"])
def test_admin_deletes_a_matched_participant__the_draw_is_repaired_as_for_a_withdrawal(
    client, make_exchange, make_participants, how
):
    operator = staff_client(client, "olga", (*OPERATOR, ("exchanges", "delete_participant")))
    exchange = make_exchange(exchange_at=PARTY)
    p1, p2, p3, p4 = make_participants(exchange, 4)
    draw(exchange, [(p1, p2), (p2, p3), (p3, p4), (p4, p1)])

    if how == "delete_selected":
        post_action(operator, "/admin/exchanges/participant/", how, p1.pk, confirm=True)
    else:
        operator.post(f"/admin/exchanges/participant/{p1.pk}/delete/", {"post": "yes"})

    assert not Participant.objects.filter(pk=p1.pk).exists()
    # p1's giver gives to p1's receiver, and is told so; nobody is left out of the draw.
    assert set(Match.objects.values_list("giver_id", "receiver_id")) == {
        (p2.pk, p3.pk),
        (p3.pk, p4.pk),
        (p4.pk, p2.pk),
    }
    changed = Notification.objects.get(template="exchanges/notifications/match_changed")
    assert changed.recipient == p4.email and "gift to:\n\n    Person 1\n" in changed.body
    assert set(reminders_at(SEVEN_DAYS_BEFORE)) == {p2.email, p3.email, p4.email}
