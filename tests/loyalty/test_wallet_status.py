"""/wallet-status/, `manage.py wallet_status` and the `wallets` health check: the truth per
wallet (OK, WARN, FAIL and why) after the runs an operator meets, and the runbook walked."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from jobs.health.checks import is_healthy, run_checks
from jobs.runner import run_job_now
from loyalty.models import WalletSyncState
from loyalty.services.wallet_sync import sync_wallet_passes
from tests.admin_helpers import staff_client

pytestmark = pytest.mark.django_db
PROBE = "0" * 64
VIEW = ("loyalty", "view_loyaltycard")


def status_command(capsys) -> tuple[int, list[str]]:
    """(exit code, lines) of `manage.py wallet_status`."""
    try:
        call_command("wallet_status")
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, capsys.readouterr().out.splitlines()


def test_wallet_status__staff_only_and_fresh_needs_the_permission_and_is_rate_limited(
    client, frozen_now, fake_wallet
):
    assert client.get("/wallet-status/").status_code == 302
    User.objects.create_user("clerk", password="pw", is_staff=False)
    client.login(username="clerk", password="pw")
    assert client.get("/wallet-status/")["Location"].startswith("/admin/login/")

    bare = staff_client(client, "bare", [])  # a staff login alone reads nothing
    assert bare.get("/wallet-status/").json() == {
        "error": "needs the permission loyalty.view_loyaltycard"
    }
    viewer = staff_client(client, "viewer", [VIEW])
    assert viewer.get("/wallet-status/").status_code == 200
    assert viewer.get("/wallet-status/?fresh=1").status_code == 403
    assert client.post("/wallet-status/").status_code == 405

    prober = staff_client(client, "prober", [VIEW, ("loyalty", "probe_wallets")])
    before = len(fake_wallet.apns.pushes_to(PROBE))
    first = prober.get("/wallet-status/?fresh=1").json()
    again = prober.get("/wallet-status/?fresh=1").json()
    with time_machine.travel(frozen_now + timedelta(seconds=11), tick=False):
        later = prober.get("/wallet-status/?fresh=1").json()

    assert (first["fresh"], again["fresh"], later["fresh"]) == (True, False, True)
    assert len(fake_wallet.apns.pushes_to(PROBE)) - before == 2  # the refused one asked nobody


def test_status__after_a_40_percent_failure_run_is_warn_exit_1(
    frozen_now, program_factory, card_factory, fake_wallet, capsys, no_backoff_sleep
):
    program = program_factory()
    for i in range(10):
        card_factory(program, google=f"issuer.g{i}")
    fake_wallet.google.faults.failing_ids.update(f"issuer.g{i}" for i in range(4))

    run = run_job_now("loyalty.sync_wallet_passes")

    code, lines = status_command(capsys)
    assert code == 1
    assert lines[0] == (
        "google: WARN credentials accepted, but 40.0% of the last run's cards failed (alert "
        "above 5%); 4 card(s) behind; last success 2026-03-01 02:00 UTC; "
        f"last run #{run.pk}: 4 of 10 card(s) failed (40.0%)"
    )
    assert lines[1].startswith("apple: OK credentials accepted; 0 card(s) behind")


def test_status__after_a_401_is_fail_exit_2_without_saying_accepted_then_ok_once_fixed(
    frozen_now, program_factory, card_factory, fake_wallet, capsys, client
):
    program = program_factory()
    card_factory(program, google="issuer.g1")
    card_factory(program, google="issuer.g2")
    fake_wallet.google.faults.revoked = True
    run = run_job_now("loyalty.sync_wallet_passes")
    assert run.result["stopped"][0].startswith("google: credentials refused: HTTP 401")

    code, lines = status_command(capsys)
    assert code == 2
    assert lines[0].startswith(
        "google: FAIL credentials refused: HTTP 401 from walletobjects for "
        "wallet-sync@fake-project.iam.gserviceaccount.com"
    )
    assert "accepted" not in lines[0]

    fake_wallet.google.faults.revoked = False  # the operator fixed the key
    code, lines = status_command(capsys)
    assert code == 0
    assert lines[0].startswith(
        "google: OK credentials accepted now (the last run was refused before the fix); "
        f"2 card(s) behind; no success yet; last run #{run.pk}: 0 of 0 card(s) failed (0.0%)"
    )
    body = staff_client(client, "viewer", [VIEW]).get("/wallet-status/").json()
    assert body["state"] == "OK" and body["wallets"]["google"]["state"] == "OK"
    text = str(body)
    assert "PRIVATE KEY" not in text and "fake-access-" not in text


def test_status__a_quota_403_is_transient_never_credentials_refused(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder, capsys
):
    program = program_factory()
    for i in range(3):
        card_factory(program, google=f"issuer.q{i}")
    fake_wallet.google.faults.quota_exceeded = True

    result = sync_wallet_passes(sleep=sleep_recorder)

    assert result["stopped"] == [] and result["failed"] == 3
    assert sorted(sleep_recorder.delays) == sorted([1.0, 4.0, 16.0] * 3)  # retried like a 429
    assert "HTTP 403 rateLimitExceeded" in WalletSyncState.objects.first().last_error
    code, lines = status_command(capsys)
    assert code == 1 and "refused" not in lines[0]
    assert lines[0].startswith("google: WARN could not ask the wallet (unreachable: GET ")


def test_status__credentials_file_replaced_in_place_is_asked_again(
    frozen_now, program_factory, card_factory, fake_wallet, settings, capsys, tmp_path
):
    card_factory(program_factory(), apple="a-1")
    broken = tmp_path / "pass-cert.pem"
    broken.write_text("not a certificate")
    settings.LOYALTY_APPLE_PASS_CERT_FILE = str(broken)
    code, lines = status_command(capsys)
    assert code == 2 and lines[1].startswith(
        "apple: FAIL settings unusable: pass type certificate or key unusable for APNs"
    )

    broken.write_bytes(fake_wallet.keys.pass_cert_file.read_bytes() + b"\n")  # same path
    code, lines = status_command(capsys)
    assert code == 0 and lines[1].startswith("apple: OK credentials accepted; 1 card(s) behind")


def test_health__wallet_problems_are_a_warning_line_never_unhealthy(
    frozen_now, program_factory, card_factory, fake_wallet, settings
):
    card_factory(program_factory(), apple="a-1")
    settings.LOYALTY_APPLE_PASS_CERT_FILE = ""

    wallets = {c.name: c for c in run_checks()}["wallets"]

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
        "_JSON); 0 card(s) behind; no success yet; no run yet | apple: OK not configured (set "
        "LOYALTY_APPLE_PASS_TYPE_ID); 0 card(s) behind; no success yet; no run yet"
    )


def test_runbook__every_step_of_docs_loyalty_md_can_be_done_as_written(
    frozen_now, program_factory, card_factory, fake_wallet, capsys, no_backoff_sleep
):
    """docs/loyalty.md, "Runbook: when a run is flagged", step by step, with the words an
    operator reads at each step."""
    program = program_factory()
    cards = [card_factory(program, google=f"issuer.r{i}") for i in range(12)]
    fake_wallet.google.deleted.add("issuer.r0")  # deleted on Google's side; no class id yet
    fake_wallet.google.faults.revoked = True
    flagged = run_job_now("loyalty.sync_wallet_passes")
    assert flagged.needs_attention

    # 1. wallet_status (and the jobs_health line) says what is wrong, credentials asked now.
    code, lines = status_command(capsys)
    assert code == 2 and lines[0].startswith("google: FAIL credentials refused: HTTP 401")
    try:
        call_command("jobs_health")
    except CommandError:
        pass  # other checks (no cluster in this test) may be unhealthy; wallets never is
    health = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wallets")]
    assert health[0].startswith("wallets: WARN google: FAIL credentials refused")

    # 2. Credentials refused: fix the setting, run wallet_status until it says OK.
    fake_wallet.google.faults.revoked = False
    code, lines = status_command(capsys)
    assert code == 0 and lines[0].startswith("google: OK credentials accepted now")

    # 5. Push at once instead of waiting for the hour. The object deleted at Google cannot be
    # re-created without a class id: refused for good, so quarantined, not a failure.
    call_command("sync_wallet_passes")
    assert f'"quarantined_card_ids": [{cards[0].pk}]' in capsys.readouterr().out
    code, lines = status_command(capsys)
    assert code == 0 and "0 of 11 card(s) failed" in lines[0]  # 11 tried, 1 quarantined

    # 4. A quarantined card's last_error says why ("no google_wallet_class_id": set it).
    state = WalletSyncState.objects.get(card=cards[0], wallet="google")
    assert "no google_wallet_class_id" in state.last_error
    program.google_wallet_class_id = "issuer.points"
    program.save()
    call_command("sync_wallet_passes", "--card", str(cards[0].pk))
    capsys.readouterr()
    code, lines = status_command(capsys)
    assert code == 0 and lines[0].startswith("google: OK credentials accepted; 0 card(s) behind")

    # 3. Wallet down: nothing to fix here; the next run catches the cards up.
    for card in cards:
        card.points_balance += 1
        card.save(update_fields=["points_balance"])
        fake_wallet.google.faults.failing_ids.add(card.google_object_id)
    run_job_now("loyalty.sync_wallet_passes")
    code, lines = status_command(capsys)
    assert code == 2 and lines[0].startswith("google: FAIL wallet down in the last run")
    fake_wallet.google.faults.failing_ids.clear()
    catch_up = run_job_now("loyalty.sync_wallet_passes")
    code, lines = status_command(capsys)
    assert catch_up.result["synced"] == 12
    assert code == 0 and lines[0].startswith("google: OK credentials accepted; 0 card(s) behind")
