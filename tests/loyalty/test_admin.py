"""Admin card actions: each queues one real job recorded with the acting user, "Expire now"
asks first (it voids points for good), and the operator lands on the run it created."""

from datetime import timedelta

import pytest
from django.urls import reverse

from jobs.models import JobRun
from jobs.runner import execute_queued_run
from loyalty.models import LoyaltyTransaction
from tests.admin_helpers import post_action, run_page, staff_client

pytestmark = pytest.mark.django_db

URL = reverse("admin:loyalty_loyaltycard_changelist")
#: Exactly what an operator needs for both actions (not a superuser).
OPERATOR_PERMISSIONS = (
    ("loyalty", "view_loyaltycard"),
    ("loyalty", "change_loyaltycard"),
    ("jobs", "view_jobrun"),
    ("jobs", "run_job"),
)


def without(*codenames: str):
    return tuple(p for p in OPERATOR_PERMISSIONS if p[1] not in codenames)


@pytest.fixture
def operator(client):
    return staff_client(client, "olga", OPERATOR_PERMISSIONS)


def act(client, action: str, *ids: int, confirm: bool = False, **extra):
    return post_action(client, URL, action, *ids, confirm=confirm, **extra)


def offered_actions(client) -> str:
    page = client.get(URL)
    assert page.status_code == 200
    return page.content.decode()


@pytest.fixture
def cards(program_factory, card_factory, frozen_now):
    program = program_factory(expiration_days=365)
    never = program_factory(expiration_days=None)
    return {
        "due": card_factory(
            program, points=50, inactive_days=400, google="g-due", warned_days_ago=20
        ),
        "warn": card_factory(program, points=30, inactive_days=355),
        "fresh": card_factory(program, points=20, inactive_days=1, apple="a-fresh"),
        "empty": card_factory(program, points=0, inactive_days=400),
        "never": card_factory(never, points=10, inactive_days=400),
    }


def ids(cards, *names: str) -> list[int]:
    return [cards[name].pk for name in names]


# -- Expire now ----------------------------------------------------------------------


def test_expire_now__confirmation_shows_cards_programs_and_voided_points_and_queues_nothing(
    operator, cards, frozen_now
):
    page = act(operator, "expire_now", *ids(cards, "due", "warn", "fresh", "empty", "never"))

    html = page.content.decode()
    assert page.status_code == 200 and "Expire the points of these cards now?" in html
    assert "1 of the 4 card(s) are past their program&#x27;s expiration" in html
    assert "their 50 points will be voided" in html and "cannot be undone" in html
    program = cards["due"].merchant.programs.get()
    assert (
        f"{program.name} ({program.merchant.name}, points expire after 365 days of inactivity):"
        " 3 selected card(s), 1 past expiration with 50 points to void, 1 to warn"
    ) in html
    assert "1 selected card(s) belong to no active program whose points expire" in html
    warned_for = frozen_now - timedelta(days=6)  # warned 20 days ago: due 35 days ago + 14
    assert f"{cards['due'].number} (" in html
    assert f"50 points will be voided (warned, due on {warned_for:%Y-%m-%d} (UTC))" in html
    assert "30 points expire" in html and "the customer gets a warning" in html
    assert f"20 points expire on {frozen_now + timedelta(days=364):%Y-%m-%d} (UTC)" in html
    assert "10 points; no expiring program: left alone" in html
    assert "1 selected loyalty cards have no points or are inactive" in html
    assert 'value="Yes, expire now"' in html and "triggered by" in html and "olga" in html
    form = html.split("<form")[-1]
    assert f'value="{cards["empty"].pk}"' not in form  # only cards with points are carried
    assert f'value="{cards["due"].pk}"' in form and 'name="post" value="yes"' in form
    assert not JobRun.objects.exists()
    cards["due"].refresh_from_db()
    assert cards["due"].points_balance == 50


def test_expire_now__confirmed__queues_one_run_as_the_user_and_lands_on_it(operator, cards):
    response = act(
        operator, "expire_now", *ids(cards, "due", "warn", "fresh", "empty"), confirm=True
    )

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert (run.job, run.trigger, run.triggered_by, run.status) == (
        "loyalty.expire_points",
        "admin",
        "olga",
        "queued",
    )
    assert run.kwargs == {"card_ids": ids(cards, "due", "warn", "fresh")}
    cards["due"].refresh_from_db()
    assert cards["due"].points_balance == 50  # the queued run expires it, not the request
    page = operator.get(response["Location"])
    assert page.status_code == 200
    assert f"Queued loyalty.expire_points as run #{run.pk} for 3 card(s)" in page.content.decode()

    execute_queued_run(run.pk)  # what the cluster's worker does

    run.refresh_from_db()
    for card in cards.values():
        card.refresh_from_db()
    assert run.status == "succeeded"
    assert (run.result["cards_processed"], run.result["points_expired"]) == (1, 50)
    assert cards["due"].points_balance == 0 and cards["fresh"].points_balance == 20
    assert cards["warn"].last_expiration_warning_at is not None
    assert LoyaltyTransaction.objects.filter(
        card=cards["due"], transaction_type=LoyaltyTransaction.Type.POINTS_EXPIRED
    ).exists()
    assert run.progress == {
        "done": 2,
        "total": None,
        "unit": "cards",
        "program": 1,
        "programs": 1,
        "warned": 1,
        "expired": 1,
    }


def test_expire_now__warns_about_an_expiration_run_already_queued(operator, cards):
    act(operator, "expire_now", cards["due"].pk, confirm=True)
    queued = JobRun.objects.get()

    html = act(operator, "expire_now", cards["due"].pk).content.decode()

    assert "already queued or running" in html and f"#{queued.pk} (queued)" in html
    assert JobRun.objects.count() == 1


def test_expire_now__select_all_across_pages_carries_the_selection_not_the_ids(operator, cards):
    html = act(operator, "expire_now", cards["due"].pk, select_across="1").content.decode()

    form = html.split("<form")[-1]
    # The flag and the ticked card (Django wants one), not every id of every page.
    assert 'name="select_across" value="1"' in form
    assert form.count('name="_selected_action"') == 1
    assert "1 of the 4 card(s)" in html  # every card with points, on any page

    response = act(operator, "expire_now", cards["due"].pk, confirm=True, select_across="1")

    run = JobRun.objects.get()
    assert response["Location"] == run_page(run)
    assert run.kwargs == {"card_ids": ids(cards, "due", "warn", "fresh", "never")}


def test_expire_now__no_card_with_points__warns_and_queues_nothing(operator, cards):
    response = act(operator, "expire_now", cards["empty"].pk)

    assert response.status_code == 302 and response["Location"] == URL
    assert "No selected card has points to expire." in offered_actions(operator)
    assert not JobRun.objects.exists()


# -- Re-sync wallet ------------------------------------------------------------------


def test_resync_wallet__no_confirmation__queues_as_the_user_and_lands_on_the_run(operator, cards):
    response = act(operator, "resync_wallet", *ids(cards, "due", "warn", "fresh"))

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert (run.job, run.kwargs, run.trigger, run.triggered_by, run.status) == (
        "loyalty.sync_wallet_passes",
        {"card_ids": ids(cards, "due", "fresh")},  # only cards with a wallet pass
        "admin",
        "olga",
        "queued",
    )
    assert "wallet_base_url" not in run.kwargs


def test_resync_wallet__no_card_with_a_pass__warns_and_queues_nothing(operator, cards):
    act(operator, "resync_wallet", cards["warn"].pk)

    assert "No selected card has a wallet pass." in offered_actions(operator)
    assert not JobRun.objects.exists()


def test_without_view_jobrun__stays_on_the_list_with_a_link_to_the_run(client, cards):
    user = staff_client(client, "vic", without("view_jobrun"))

    response = act(user, "resync_wallet", cards["due"].pk)

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == URL
    assert run.triggered_by == "vic"
    assert f'run <a href="{run_page(run)}">#{run.pk}</a> for 1 card(s)' in offered_actions(user)


# -- Permissions ---------------------------------------------------------------------


def test_operator__is_offered_both_actions(operator, cards):
    html = offered_actions(operator)

    assert 'value="expire_now"' in html and 'value="resync_wallet"' in html


def test_expire_now__needs_change_as_well_as_run(client, cards):
    user = staff_client(client, "rita", without("change_loyaltycard"))

    html = offered_actions(user)
    response = act(user, "expire_now", cards["due"].pk, confirm=True)

    assert 'value="resync_wallet"' in html and 'value="expire_now"' not in html
    # Not one of the user's actions: Django sends the POST back to the list, queues nothing.
    assert response.status_code == 302 and response["Location"] == URL
    assert "Queued" not in offered_actions(user)
    assert not JobRun.objects.exists()
    cards["due"].refresh_from_db()
    assert cards["due"].points_balance == 50


@pytest.mark.parametrize("action", ["expire_now", "resync_wallet"])
def test_card_actions__are_refused_without_the_run_job_permission(client, cards, action):
    user = staff_client(client, "viewer", without("run_job"))

    html = offered_actions(user)
    response = act(user, action, *ids(cards, "due", "fresh"), confirm=True)

    assert f'value="{action}"' not in html  # not offered
    assert response.status_code == 200 and "Queued" not in response.content.decode()
    assert not JobRun.objects.exists()  # and refused when posted anyway


# -- Wallet sync state ---------------------------------------------------------------


def test_card_page__shows_each_wallets_sync_state_read_only(client, cards):
    from loyalty.models import WalletSyncState

    card = cards["due"]
    WalletSyncState.objects.create(
        card=card, wallet="google", synced_version=3, failures=2, last_error="HTTP 503"
    )
    viewer = staff_client(client, "vera", [("loyalty", "view_loyaltycard")])
    page = viewer.get(reverse("admin:loyalty_loyaltycard_change", args=[card.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "Wallet sync states" in html and "HTTP 503" in html
    olga = staff_client(client, "olga2", OPERATOR_PERMISSIONS)
    change = olga.get(reverse("admin:loyalty_loyaltycard_change", args=[card.pk]))
    assert 'name="wallet_states-0-last_error"' not in change.content.decode()
