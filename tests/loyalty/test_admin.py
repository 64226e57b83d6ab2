"""Admin card actions queue the real jobs, recorded with the acting user, behind jobs.run_job."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from jobs.models import JobRun

pytestmark = pytest.mark.django_db

URL = reverse("admin:loyalty_loyaltycard_changelist")


def staff(username: str, *, can_run: bool) -> User:
    """Staff who may view and change cards; jobs.run_job only when `can_run`."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    codenames = ["view_loyaltycard", "change_loyaltycard"] + (["run_job"] if can_run else [])
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def act(client, action: str, *ids: int):
    return client.post(URL, {"action": action, "_selected_action": list(ids)})


@pytest.fixture
def cards(program_factory, card_factory, frozen_now):
    program = program_factory(expiration_days=365)
    return {
        "due": card_factory(program, points=50, inactive_days=400, google="g-due"),
        "fresh": card_factory(program, points=20, inactive_days=1, apple="a-fresh"),
        "empty": card_factory(program, points=0, inactive_days=400),
    }


def test_expire_now_and_resync__queue_runs_recorded_with_the_acting_user(client, cards):
    client.force_login(staff("operator", can_run=True))
    ids = [card.pk for card in cards.values()]

    expire = act(client, "expire_now", *ids)
    resync = act(client, "resync_wallet", *ids)

    assert expire.status_code == resync.status_code == 302
    runs = {run.job: run for run in JobRun.objects.all()}
    assert set(runs) == {"loyalty.expire_points", "loyalty.sync_wallet_passes"}
    expire_run, sync_run = runs["loyalty.expire_points"], runs["loyalty.sync_wallet_passes"]
    # Only cards with points are sent to expiration, only cards with a pass to the wallets.
    assert sorted(expire_run.kwargs["card_ids"]) == sorted([cards["due"].pk, cards["fresh"].pk])
    assert sorted(sync_run.kwargs["card_ids"]) == sorted([cards["due"].pk, cards["fresh"].pk])
    assert "wallet_base_url" not in sync_run.kwargs
    assert {(r.trigger, r.triggered_by, r.status) for r in runs.values()} == {
        ("admin", "operator", "queued")
    }
    cards["due"].refresh_from_db()
    assert cards["due"].points_balance == 50  # the queued run expires it, not the request


@pytest.mark.parametrize("action", ["expire_now", "resync_wallet"])
def test_card_actions__are_refused_without_the_run_job_permission(client, cards, action):
    client.force_login(staff("viewer", can_run=False))

    page = client.get(URL)
    response = act(client, action, *[card.pk for card in cards.values()])

    assert page.status_code == 200
    assert f'value="{action}"' not in page.content.decode()  # not offered
    assert not JobRun.objects.exists()  # and refused when posted anyway
    # Django offers the user no such action, so the POST only shows the changelist again.
    assert response.status_code == 200 and "Queued" not in response.content.decode()
