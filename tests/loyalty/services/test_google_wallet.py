"""Google Wallet through a service account: tokens, a deleted object, refused credentials.

The fake token endpoint verifies the JWT assertion with the public half of a key made
for the test session, and the walletobjects fake accepts only the tokens it minted.
"""

import logging
from datetime import timedelta

import pytest
import time_machine

from devkit.wallets.google import SCOPE
from devkit.wallets.keys import SERVICE_ACCOUNT_EMAIL
from jobs.models import JobRun
from jobs.runner import run_job_now
from loyalty.models import WalletSyncState
from loyalty.services.wallet_sync import sync_wallet_passes

pytestmark = pytest.mark.django_db


def bump(card, points: int = 5) -> None:
    """A balance change, as a purchase makes it (the trigger draws a new balance_version)."""
    card.points_balance += points
    card.save(update_fields=["points_balance"])


def test_token__minted_from_the_key_reused_then_refreshed_when_it_expires(
    frozen_now, program_factory, card_factory, fake_wallet
):
    card = card_factory(program_factory(), inactive_days=0.01, google="issuer.card-1")
    google = fake_wallet.google

    sync_wallet_passes()
    assert len(google.token_requests) == 1
    claims = google.token_requests[0]
    assert (claims["iss"], claims["scope"]) == (SERVICE_ACCOUNT_EMAIL, SCOPE)
    first_token = google.calls[0].authorization

    bump(card)
    sync_wallet_passes()  # 10 minutes' worth of runs later: the same token
    assert len(google.token_requests) == 1
    assert google.calls[1].authorization == first_token

    with time_machine.travel(frozen_now + timedelta(minutes=59), tick=False):
        bump(card)  # within google-auth's refresh margin before the hour is over
        result = sync_wallet_passes()
    assert len(google.token_requests) == 2
    assert google.calls[2].authorization != first_token
    assert [c.status for c in google.calls] == [200, 200, 200]
    assert result["wallets"]["google"]["synced"] == 1


def test_token__never_logged(frozen_now, program_factory, card_factory, fake_wallet, caplog):
    card_factory(program_factory(), inactive_days=0.01, google="issuer.card-1")
    fake_wallet.google.faults.flaky_ids["issuer.card-1"] = 1  # a retry, a warning line

    with caplog.at_level(logging.DEBUG):
        result = sync_wallet_passes(sleep=lambda seconds: None)

    token = fake_wallet.google.calls[0].authorization.removeprefix("Bearer ")
    assert result["synced"] == 1 and token.startswith("fake-access-")
    assert token not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


def test_deleted_object__is_inserted_again_in_the_programs_class_and_counted_recreated(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    program.google_wallet_class_id = "issuer.points"
    program.save()
    card = card_factory(program, points=42, inactive_days=0.01, google="issuer.card-1")
    fake_wallet.google.deleted.add("issuer.card-1")

    result = sync_wallet_passes()

    assert [(c.method, c.status) for c in fake_wallet.google.calls] == [
        ("PATCH", 404),
        ("POST", 200),
    ]
    recreated = fake_wallet.google.objects["issuer.card-1"]
    assert recreated["classId"] == "issuer.points"
    assert recreated["loyaltyPoints"]["balance"] == {"int": 42}
    assert result["wallets"]["google"]["recreated"] == 1
    assert (result["synced"], result["failed"]) == (1, 0)
    state = WalletSyncState.objects.get(card=card, wallet="google")
    card.refresh_from_db()
    assert state.synced_version == card.balance_version


def test_deleted_object__without_a_class_id_is_quarantined_and_says_why(
    frozen_now, program_factory, card_factory, fake_wallet
):
    card = card_factory(program_factory(), inactive_days=0.01, google="issuer.card-1")
    fake_wallet.google.deleted.add("issuer.card-1")

    result = sync_wallet_passes()

    assert (result["quarantined_card_ids"], result["failed"]) == ([card.pk], 0)
    state = WalletSyncState.objects.get(card=card, wallet="google")
    assert "no google_wallet_class_id" in state.last_error and state.failures == 1
    assert state.quarantined_version == card.balance_version


def test_401__stops_google_for_the_run_after_one_card_and_flags_it_apple_goes_on(
    frozen_now, program_factory, card_factory, fake_wallet, register_device
):
    program = program_factory()
    cards = [card_factory(program, inactive_days=0.01, google=f"issuer.c{i}") for i in range(30)]
    apple = card_factory(program, inactive_days=0.01, apple="serial-1")
    register_device(apple)
    fake_wallet.google.faults.revoked = True

    run = run_job_now("loyalty.sync_wallet_passes")

    run.refresh_from_db()
    google = run.result["wallets"]["google"]
    # One card tried: its PATCH, google-auth's refresh on 401 and the PATCH again.
    assert [c.status for c in fake_wallet.google.calls] == [401, 401]
    assert (google["failed"], google["skipped"], google["synced"]) == (0, 30, 0)
    assert google["stopped"].startswith("google: credentials refused: HTTP 401")
    assert run.result["stopped"] == [google["stopped"]]
    assert run.result["wallets"]["apple"]["synced"] == 1
    assert len(fake_wallet.apns.pushes) == 1
    assert run.status == JobRun.Status.SUCCEEDED and run.needs_attention
    assert run.attention_reason.startswith("google: credentials refused")
    assert "\n" not in run.attention_reason
    # Nothing recorded for Google: every card is still behind for the next run.
    assert not WalletSyncState.objects.filter(wallet="google").exists()
    assert run.result["behind_after"]["google"] == len(cards)


def test_token_endpoint_refusing_the_key__stops_before_any_wallet_call(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    for i in range(5):
        card_factory(program, inactive_days=0.01, google=f"issuer.c{i}")
    fake_wallet.google.faults.token_refused = True

    result = sync_wallet_passes()

    assert fake_wallet.google.calls == []
    assert result["stopped"] == [
        "google: credentials refused: token request refused: "
        "('invalid_grant: Invalid JWT Signature.', {'error': 'invalid_grant', "
        "'error_description': 'Invalid JWT Signature.'})"
    ]
    assert result["wallets"]["google"]["skipped"] == 5 and result["failed"] == 0


def test_not_configured__cards_with_google_passes_stop_the_wallet_with_the_setting_to_set(
    frozen_now, program_factory, card_factory, fake_wallet, settings
):
    settings.LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE = ""
    card_factory(program_factory(), inactive_days=0.01, google="issuer.c1")

    result = sync_wallet_passes()

    assert result["stopped"] == [
        "google: not configured (set LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE or _JSON)"
    ]


def test_key_json_from_the_environment_works_like_the_file(
    frozen_now, program_factory, card_factory, fake_wallet, settings, monkeypatch
):
    content = open(settings.LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE).read()
    settings.LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE = ""
    monkeypatch.setenv("LOYALTY_GOOGLE_SERVICE_ACCOUNT_JSON", content)
    card_factory(program_factory(), inactive_days=0.01, google="issuer.c1")

    result = sync_wallet_passes()

    assert result["wallets"]["google"]["synced"] == 1
    assert len(fake_wallet.google.token_requests) == 1


def test_403__the_account_is_not_an_issuer_user_stops_google_without_a_refresh(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    for i in range(12):
        card_factory(program, google=f"issuer.c{i}")
    fake_wallet.google.faults.forbidden = True

    result = sync_wallet_passes()

    assert [c.status for c in fake_wallet.google.calls] == [403]
    assert len(fake_wallet.google.token_requests) == 1
    assert result["stopped"][0].startswith("google: credentials refused: HTTP 403")
    assert result["wallets"]["google"]["skipped"] == 12
