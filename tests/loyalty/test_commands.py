"""Operator commands: bad input fails with one line and writes nothing; good input runs the job."""

import pytest
from django.core.management import CommandError, call_command

from jobs.models import JobRun
from loyalty.models import LoyaltyCard

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("expire_points", {"program": 999999}, "no loyalty program with id 999999"),
        ("sync_wallet_passes", {"card": 999999}, "no loyalty card with id 999999"),
        ("sync_wallet_passes", {"all_since": "yesterday"}, "must be a date-time with a zone"),
        (
            "sync_wallet_passes",
            {"all_since": "2026-01-01T00:00"},
            "must be a date-time with a zone",
        ),
    ],
)
def test_commands__bad_input_exits_2_and_records_no_run(command, options, message):
    with pytest.raises(CommandError, match=message) as error:
        call_command(command, **options)

    assert error.value.returncode == 2
    assert not JobRun.objects.exists()


def test_expire_points_command__dry_run_then_real_run(
    frozen_now, program_factory, card_factory, capsys
):
    program = program_factory(expiration_days=30)
    card = card_factory(program, points=80, inactive_days=40, warned_days_ago=15)

    call_command("expire_points", program=program.pk, dry_run=True)
    card.refresh_from_db()
    assert card.points_balance == 80
    call_command("expire_points", program=program.pk)

    card.refresh_from_db()
    assert card.points_balance == 0
    runs = list(JobRun.objects.order_by("pk").values_list("status", "trigger", "result"))
    assert [r[:2] for r in runs] == [("succeeded", "command")] * 2
    assert runs[0][2]["dry_run"] is True and runs[0][2]["points_expired"] == 80
    assert runs[1][2]["points_expired"] == 80


def test_sync_wallet_passes_command__resyncs_one_card_on_demand(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    old = card_factory(program, points=9, inactive_days=30, google="g-old")
    card_factory(program, points=3, inactive_days=0.01, google="g-recent")

    call_command("sync_wallet_passes", card=old.pk)

    assert [c.key for c in fake_wallet.google.calls] == ["g-old"]
    run = JobRun.objects.get()
    assert run.result["card_ids"] == [old.pk] and run.result["synced"] == 1


def test_sync_wallet_passes_command__a_stopped_wallet_exits_1_with_its_line(
    frozen_now, program_factory, card_factory, fake_wallet, capsys
):
    card_factory(program_factory(), google="g-1")
    fake_wallet.google.faults.revoked = True

    with pytest.raises(CommandError) as error:
        call_command("sync_wallet_passes")

    assert error.value.returncode == 1
    assert str(error.value).startswith("google: credentials refused: HTTP 401")


def test_wallet_status_command__one_line_per_wallet_exit_2_when_one_fails(
    frozen_now, program_factory, card_factory, fake_wallet, settings, capsys
):
    card_factory(program_factory(), google="g-1", apple="a-1")
    call_command("wallet_status")
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "google: OK credentials accepted; 1 card(s) behind; no success yet; no run yet",
        "apple: OK credentials accepted; 1 card(s) behind; no success yet; no run yet",
    ]

    call_command("sync_wallet_passes")
    capsys.readouterr()
    fake_wallet.apns.faults.refuse_certificate = True
    settings.LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE = "/nonexistent/key.json"
    with pytest.raises(CommandError, match="wallet\\(s\\) FAIL: google, apple") as error:
        call_command("wallet_status")
    run = JobRun.objects.get()
    assert error.value.returncode == 2
    assert capsys.readouterr().out.splitlines() == [
        "google: FAIL settings unusable: LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE: cannot read "
        "/nonexistent/key.json: No such file or directory; 0 card(s) behind; last success "
        f"2026-03-01 02:00 UTC; last run #{run.pk}: 0 of 1 card(s) failed (0.0%)",
        "apple: FAIL credentials refused: APNs refused the pass type certificate: check "
        "LOYALTY_APPLE_PASS_CERT_FILE, LOYALTY_APPLE_PASS_KEY_FILE (revoked or expired?) and "
        "LOYALTY_APPLE_APNS_URL (pass pushes go to production) (BadCertificate); 0 card(s) "
        f"behind; last success 2026-03-01 02:00 UTC; last run #{run.pk}: 0 of 1 card(s) "
        "failed (0.0%)",
    ]


def test_sync_wallet_passes_command__card_without_pass_is_refused(program_factory, card_factory):
    card = card_factory(program_factory())
    with pytest.raises(CommandError, match=f"card {card.pk} has no Google or Apple wallet pass"):
        call_command("sync_wallet_passes", card=card.pk)
    assert LoyaltyCard.objects.count() == 1 and not JobRun.objects.exists()
