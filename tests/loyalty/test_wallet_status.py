"""/wallet-status/ (staff only) and the `wallets` health check: what an operator checks first."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from jobs.services.health import is_healthy, run_checks
from tests.admin_helpers import staff_client

pytestmark = pytest.mark.django_db


def test_wallet_status__staff_only_even_without_permissions(client, fake_wallet):
    anonymous = client.get("/wallet-status/")
    User.objects.create_user("clerk", password="pw", is_staff=False)
    client.login(username="clerk", password="pw")
    not_staff = client.get("/wallet-status/")

    assert anonymous.status_code == not_staff.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    staff = staff_client(client, "viewer", []).get("/wallet-status/")
    assert staff.status_code == 200
    assert client.post("/wallet-status/").status_code == 405


def test_wallet_status__per_wallet_credentials_cards_behind_last_run_and_no_secret(
    client, frozen_now, program_factory, card_factory, fake_wallet, wallet_keys
):
    card_factory(program_factory(), google="g-1")
    card_factory(program_factory(), google="g-2")
    fake_wallet.google.faults.rejected_ids.add("g-2")
    call_command(
        "sync_wallet_passes", "--card", str(card_factory(program_factory(), google="g-3").pk)
    )
    fake_wallet.google.faults.revoked = True  # a refused key, seen by the next hourly run
    with pytest.raises(Exception, match="credentials refused"):
        call_command("sync_wallet_passes")

    body = staff_client(client, "viewer", []).get("/wallet-status/?fresh=1").json()

    google, apple = body["wallets"]["google"], body["wallets"]["apple"]
    assert (google["configured"], google["accepted"], google["cards_behind"]) == (True, True, 2)
    assert google["last_run_stopped"].startswith("google: credentials refused: HTTP 401")
    assert body["lines"][0].startswith(
        "google: FAIL credentials accepted; 2 card(s) behind; last run #"
    )  # a token is minted, but the last run was refused: not OK
    assert body["ok"] is False
    assert (apple["configured"], apple["accepted"], apple["cards_behind"]) == (True, True, 0)
    text = str(body)
    assert "PRIVATE KEY" not in text and "fake-access-" not in text
    assert wallet_keys.service_account_private_pem[40:80] not in text

    fake_wallet.google.faults.token_refused = True
    refused = staff_client(client, "viewer2", []).get("/wallet-status/?fresh=1").json()
    assert refused["ok"] is False
    assert refused["lines"][0].startswith(
        "google: FAIL credentials refused: token request refused: ('invalid_grant"
    )


def test_health__wallet_problems_are_a_warning_line_never_unhealthy(
    frozen_now, program_factory, card_factory, fake_wallet, settings
):
    card_factory(program_factory(), apple="a-1")
    settings.LOYALTY_APPLE_PASS_CERT_FILE = ""

    checks = {c.name: c for c in run_checks()}

    wallets = checks["wallets"]
    assert wallets.line().startswith("wallets: WARN google: OK credentials accepted; ")
    assert "apple: FAIL not configured (set LOYALTY_APPLE_PASS_CERT_FILE); 1 card(s) behind" in (
        wallets.detail
    )
    assert wallets.warning and is_healthy([wallets])


def test_health__wallets_not_configured_and_no_passes_is_ok(db, settings):
    for name in ("GOOGLE_SERVICE_ACCOUNT_FILE", "APPLE_PASS_TYPE_ID"):
        setattr(settings, f"LOYALTY_{name}", "")

    wallets = {c.name: c for c in run_checks()}["wallets"]

    assert wallets.ok
    assert wallets.line() == (
        "wallets: OK google: OK not configured (set LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE or "
        "_JSON); 0 card(s) behind; no run yet | apple: OK not configured (set "
        "LOYALTY_APPLE_PASS_TYPE_ID); 0 card(s) behind; no run yet"
    )
