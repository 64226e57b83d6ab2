"""Admin actions: each queues a JobRun recorded with the user, asks first where it changes
data for good (match, complete, purge), and lands on the run it created."""

import random
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from exchanges.exceptions import InvalidExchangeState, MatchingImpossible
from exchanges.models import Exchange, Exclusion, Match, Reminder
from exchanges.services.matching import match_exchange
from jobs.models import JobRun
from jobs.runner import execute_queued_run
from tests.admin_helpers import post_action, run_page, staff_client

pytestmark = pytest.mark.django_db

URL = reverse("admin:exchanges_exchange_changelist")
OPERATOR_PERMISSIONS = (
    ("exchanges", "view_exchange"),
    ("exchanges", "change_exchange"),
    ("exchanges", "delete_exchange"),
    ("exchanges", "view_reminder"),
    ("jobs", "view_jobrun"),
    ("jobs", "run_job"),
)


@pytest.fixture
def operator(client):
    """Staff with exactly the permissions the actions need (not a superuser)."""
    return staff_client(client, "olga", OPERATOR_PERMISSIONS)


def act(client, action: str, *ids: int, confirm: bool = False):
    return post_action(client, URL, action, *ids, confirm=confirm)


def messages_of(client) -> str:
    return client.get(URL).content.decode()


def test_changelist_and_change_page__show_local_date_and_reminders(
    operator, admin_client, make_exchange, make_participants
):
    exchange = make_exchange()
    make_participants(exchange, 3)
    match_exchange(exchange_id=exchange.pk, rng=random.Random(0))

    assert "2026-12-18 18:00 EST" in operator.get(URL).content.decode()
    page = operator.get(reverse("admin:exchanges_exchange_change", args=[exchange.pk]))
    assert page.status_code == 200 and "2026-12-11 18:00 EST" in page.content.decode()
    add = admin_client.get(reverse("admin:exchanges_exchange_add")).content.decode()
    assert "In UTC, not in the exchange's time zone" in add  # what the date field means
    assert Reminder.objects.filter(exchange=exchange).count() == 3


# -- Match -------------------------------------------------------------------------------


def test_match__confirmation_page_shows_what_will_be_drawn_and_queues_nothing(
    operator, make_exchange, make_participants
):
    draft = make_exchange(name="Team draw")
    people = make_participants(draft, 3)
    make_participants(draft, 1, prefix="gone", withdrawn_at="2026-11-01T00:00Z")
    Exclusion.objects.create(exchange=draft, participant_a=people[0], participant_b=people[1])
    lonely = make_exchange(name="Lonely", state="registration_open")
    make_participants(lonely, 1)
    matched = make_exchange(state="matched")

    page = act(operator, "match", draft.pk, lonely.pk, matched.pk)

    html = page.content.decode()
    assert page.status_code == 200 and "Match these exchanges?" in html
    assert f"#{draft.pk} Team draw" in html
    assert "3 active participant(s), 1 exclusion(s)" in html
    assert "1 active participant(s), 0 exclusion(s) - fewer than 2 active participants" in html
    assert "1 selected exchanges are not draft or registration_open" in html
    assert 'value="Yes, draw names"' in html and "triggered by" in html and "olga" in html
    # Only the eligible exchanges are carried to the confirm post.
    assert f'value="{matched.pk}"' not in html.split("<form")[-1]
    assert not JobRun.objects.exists() and not Match.objects.exists()


def test_match__confirmed__queues_a_run_as_the_user_and_lands_on_it(
    operator, make_exchange, make_participants
):
    exchange = make_exchange()
    make_participants(exchange, 4)

    response = act(operator, "match", exchange.pk, confirm=True)

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert (run.job, run.kwargs, run.trigger, run.triggered_by, run.status) == (
        "exchanges.match_exchange",
        {"exchange_id": exchange.pk},
        "admin",
        "olga",
        "queued",
    )
    assert not Match.objects.exists()  # the worker draws, not the request
    page = operator.get(response["Location"])
    assert page.status_code == 200 and "Queued exchanges.match_exchange" in page.content.decode()

    execute_queued_run(run.pk)  # what the cluster's worker does

    run.refresh_from_db()
    exchange.refresh_from_db()
    assert run.status == "succeeded" and run.result["participants"] == 4
    assert exchange.state == "matched" and Match.objects.count() == 4


def test_match__impossible_draw_is_recorded_failed_with_its_message_and_never_retried(
    operator, make_exchange, make_participants
):
    exchange = make_exchange()
    a, b = make_participants(exchange, 2)
    Exclusion.objects.create(exchange=exchange, participant_a=a, participant_b=b)
    act(operator, "match", exchange.pk, confirm=True)
    run = JobRun.objects.get()

    with pytest.raises(MatchingImpossible):
        execute_queued_run(run.pk)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith("MatchingImpossible: no draw satisfies the exclusions")
    assert "retry_run_id" not in run.result and JobRun.objects.count() == 1
    exchange.refresh_from_db()
    assert exchange.state == "draft" and not Match.objects.exists()


def test_match__state_changed_before_the_run__recorded_failed_permanent(
    operator, make_exchange, make_participants
):
    exchange = make_exchange()
    make_participants(exchange, 3)
    act(operator, "match", exchange.pk, confirm=True)
    act(operator, "match", exchange.pk, confirm=True)  # a double click
    first, second = JobRun.objects.order_by("pk")

    execute_queued_run(first.pk)
    with pytest.raises(InvalidExchangeState):
        execute_queued_run(second.pk)

    second.refresh_from_db()
    assert second.status == "failed" and second.error == (
        f"InvalidExchangeState: exchange {exchange.pk} is matched; only draft or"
        " registration_open exchanges can be matched"
    )
    assert JobRun.objects.count() == 2 and Match.objects.count() == 3


def test_match__confirmation_warns_about_a_draw_already_queued(
    operator, make_exchange, make_participants
):
    exchange = make_exchange()
    make_participants(exchange, 3)
    act(operator, "match", exchange.pk, confirm=True)
    queued = JobRun.objects.get()

    html = act(operator, "match", exchange.pk).content.decode()

    assert "Already queued or running" in html and f"#{queued.pk} (queued" in html


def test_match__several_exchanges__one_run_each_listed_in_a_message(
    operator, make_exchange, make_participants
):
    first, second = make_exchange(name="One"), make_exchange(name="Two")
    for exchange in (first, second):
        make_participants(exchange, 3)

    response = act(operator, "match", first.pk, second.pk, confirm=True)

    runs = list(JobRun.objects.order_by("pk"))
    assert response.status_code == 302 and response["Location"] == URL
    assert [r.kwargs["exchange_id"] for r in runs] == [first.pk, second.pk]
    assert {(r.triggered_by, r.trigger) for r in runs} == {("olga", "admin")}
    html = messages_of(operator)
    assert "Queued exchanges.match_exchange as run " in html and "for 2 exchange(s)." in html
    for run in runs:
        assert (
            f'<a href="{run_page(run)}">#{run.pk} (exchange {run.kwargs["exchange_id"]})</a>'
            in html
        )


def test_match__nothing_matchable_selected__warns_and_queues_nothing(operator, make_exchange):
    matched = make_exchange(state="matched")

    act(operator, "match", matched.pk, confirm=True)

    assert "Only draft or registration_open exchanges can be matched." in messages_of(operator)
    assert not JobRun.objects.exists()


def test_actions__need_the_run_permission(client, make_exchange, make_participants):
    exchange = make_exchange()
    make_participants(exchange, 3)
    editor = staff_client(
        client, "eddie", [("exchanges", "view_exchange"), ("exchanges", "change_exchange")]
    )

    html = editor.get(URL).content.decode()
    act(editor, "match", exchange.pk, confirm=True)

    assert 'value="match"' not in html and 'value="complete"' not in html
    assert not JobRun.objects.exists() and not Match.objects.exists()


# -- Send due reminders now --------------------------------------------------------------


def test_send_reminders_now__one_exchange__queues_as_the_user_and_lands_on_the_run(
    operator, make_exchange
):
    exchange = make_exchange(state="matched")
    draft = make_exchange()

    response = act(operator, "send_reminders_now", exchange.pk, draft.pk)

    run = JobRun.objects.get()
    assert response["Location"] == run_page(run)
    assert (run.job, run.kwargs, run.trigger, run.triggered_by) == (
        "exchanges.send_due_reminders",
        {"exchange_id": exchange.pk},
        "admin",
        "olga",
    )


def test_send_reminders_now__several__one_run_each_stays_on_the_list(operator, make_exchange):
    exchanges = [make_exchange(state="matched") for _ in range(2)]

    response = act(operator, "send_reminders_now", *(e.pk for e in exchanges))

    assert response["Location"] == URL
    assert sorted(JobRun.objects.values_list("kwargs__exchange_id", flat=True)) == sorted(
        e.pk for e in exchanges
    )
    html = messages_of(operator)
    assert "Queued exchanges.send_due_reminders as run " in html and "for 2 exchange(s)." in html


# -- Complete ----------------------------------------------------------------------------


def test_complete__confirmation_first_then_one_run_as_the_user_landing_on_it(
    operator, make_exchange, make_participants, time_machine
):
    # Eight days before the party (make_exchange: 2026-12-18): its 3 reminders are ahead.
    time_machine.move_to(datetime(2026, 12, 10, 12, 0, tzinfo=UTC), tick=False)
    exchange = make_exchange(name="Early finish")
    make_participants(exchange, 3)
    match_exchange(exchange_id=exchange.pk, rng=random.Random(0))
    draft = make_exchange()

    page = act(operator, "complete", exchange.pk, draft.pk)

    html = page.content.decode()
    assert page.status_code == 200 and "Complete these exchanges?" in html
    assert "exchange date 2026-12-18 18:00 EST, 3 scheduled reminder(s) will be skipped" in html
    assert "1 selected exchanges are not matched" in html and 'value="Yes, complete now"' in html
    assert not JobRun.objects.exists()

    response = act(operator, "complete", exchange.pk, draft.pk, confirm=True)

    run = JobRun.objects.get()
    assert response["Location"] == run_page(run)
    assert (run.job, run.kwargs, run.triggered_by) == (
        "exchanges.auto_complete",
        {"exchange_ids": [exchange.pk], "include_future": True},
        "olga",
    )
    execute_queued_run(run.pk)
    exchange.refresh_from_db()
    assert exchange.state == "completed"
    assert set(Reminder.objects.values_list("status", flat=True)) == {"skipped"}


# -- Purge now ---------------------------------------------------------------------------


def test_purge_now__confirmation_first_then_queues_as_the_user_and_lands_on_the_run(
    operator, make_exchange, make_participants
):
    done = make_exchange(state="completed", completed_at="2026-12-20T00:00Z")
    make_participants(done, 2)
    other = make_exchange(state="matched")

    page = act(operator, "purge_now", done.pk, other.pk)

    html = page.content.decode()
    assert page.status_code == 200 and 'value="Yes, purge now"' in html
    assert "completed 2026-12-20 00:00 UTC, 2 participants" in html
    assert "1 selected exchanges are not completed" in html
    assert not JobRun.objects.exists()

    response = act(operator, "purge_now", done.pk, other.pk, confirm=True)

    run = JobRun.objects.get()
    assert response["Location"] == run_page(run)
    assert (run.job, run.kwargs, run.triggered_by) == (
        "exchanges.purge_completed",
        {"exchange_ids": [done.pk]},
        "olga",
    )
    assert Exchange.objects.count() == 2  # deleted by the queued run, not the request
    execute_queued_run(run.pk)
    run.refresh_from_db()
    assert list(Exchange.objects.values_list("pk", flat=True)) == [other.pk]
    assert run.progress == {"done": 1, "total": 1, "unit": "exchanges", "warned": 0}


def test_purge_now__needs_the_delete_permission(client, make_exchange):
    done = make_exchange(state="completed", completed_at="2026-12-20T00:00Z")
    no_delete = [p for p in OPERATOR_PERMISSIONS if p[1] != "delete_exchange"]
    user = staff_client(client, "nodel", no_delete)

    act(user, "purge_now", done.pk, confirm=True)

    assert not JobRun.objects.exists() and Exchange.objects.count() == 1


def test_match__needs_change_as_well_as_run(client, make_exchange, make_participants):
    exchange = make_exchange()
    make_participants(exchange, 3)
    runner = staff_client(client, "rita", [("exchanges", "view_exchange"), ("jobs", "run_job")])

    html = runner.get(URL).content.decode()
    act(runner, "match", exchange.pk, confirm=True)

    assert 'value="send_reminders_now"' in html and 'value="match"' not in html
    assert not JobRun.objects.exists()


def test_without_view_jobrun__stays_on_the_list_with_a_link(client, make_exchange):
    exchange = make_exchange(state="matched")
    user = staff_client(client, "vic", [("exchanges", "view_exchange"), ("jobs", "run_job")])

    response = act(user, "send_reminders_now", exchange.pk)

    run = JobRun.objects.get()
    assert response["Location"] == URL and run.triggered_by == "vic"
    assert f'<a href="{run_page(run)}">#{run.pk} (exchange {exchange.pk})</a>' in messages_of(user)


def test_admin_add_participant__the_same_address_in_other_capitals_is_refused(
    client, make_exchange, make_participants
):
    """The same mailbox twice could draw itself, and would read both draws."""
    staff_client(client, "olga", [("exchanges", "add_participant")])
    exchange = make_exchange()
    (alice,) = make_participants(exchange, 1)

    response = client.post(
        reverse("admin:exchanges_participant_add"),
        {
            "exchange": exchange.pk,
            "name": "Alice again",
            "email": alice.email.upper(),
            "reminder_enabled": "on",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert "already in this exchange" in response.content.decode()
    assert list(exchange.participants.values_list("email", flat=True)) == [alice.email]
