"""loyalty.sync_wallet_passes against the real-HTTP fake wallet: retries, failures, alert."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command

from jobs.exceptions import BadJobArguments
from jobs.models import JobRun
from jobs.runner import enqueue_job, run_job_now
from loyalty.exceptions import PermanentWalletError
from loyalty.fake_wallet import FakeWallet
from loyalty.services.wallet_sync import sync_wallet_passes

pytestmark = pytest.mark.django_db


def test_sync__pushes_recently_changed_cards_with_a_pass_to_each_wallet(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    both = card_factory(program, points=42, inactive_days=0.01, google="g-1", apple="a-1")
    card_factory(program, points=5, inactive_days=0.01)  # no wallet pass
    card_factory(program, points=7, inactive_days=2, google="g-old")  # no recent transaction

    result = sync_wallet_passes()

    assert (result["cards_considered"], result["synced"], result["failed"]) == (1, 1, 0)
    google, apple = fake_wallet.calls_for("google:g-1"), fake_wallet.calls_for("apple:a-1")
    assert [c.method for c in google] == ["PATCH"] and [c.method for c in apple] == ["POST"]
    assert google[0].authorization == "Bearer google-test-token"
    assert google[0].body["loyaltyPoints"]["balance"] == {"int": 42}
    assert apple[0].body == {"serialNumber": "a-1", "points": 42, "stamps": 0}
    assert len(fake_wallet.calls) == 2 and both.pk not in result["failed_card_ids"]


def test_sync__retries_with_the_seed_delays_then_reports_failed_card_ids(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder
):
    program = program_factory()
    flaky = card_factory(program, inactive_days=0.01, google="flaky")
    broken = card_factory(program, inactive_days=0.01, google="broken")
    fine = card_factory(program, inactive_days=0.01, apple="fine")
    fake_wallet.faults.flaky_keys["google:flaky"] = 3  # succeeds on attempt 4
    fake_wallet.faults.failing_keys.add("google:broken")

    started = time.monotonic()
    result = sync_wallet_passes(sleep=sleep_recorder)

    assert time.monotonic() - started < 5  # 2 x 21 s of backoff were not slept
    assert sorted(sleep_recorder.delays) == [1.0, 1.0, 4.0, 4.0, 16.0, 16.0]
    assert len(fake_wallet.calls_for("google:flaky")) == 4
    assert len(fake_wallet.calls_for("google:broken")) == 4
    assert len(fake_wallet.calls_for("apple:fine")) == 1
    assert result["failed_card_ids"] == [broken.pk]
    assert (result["synced"], result["failed"]) == (2, 1)
    assert flaky.pk not in result["failed_card_ids"] and fine.pk not in result["failed_card_ids"]


def test_sync__a_timeout_is_retried_like_a_5xx(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder, settings
):
    settings.LOYALTY_WALLET_TIMEOUT_SECONDS = 0.2
    fake_wallet.faults.timeout_rate = 1.0
    fake_wallet.faults.hang_seconds = 0.4
    card = card_factory(program_factory(), inactive_days=0.01, google="slow")

    result = sync_wallet_passes(sleep=sleep_recorder)

    assert result["failed_card_ids"] == [card.pk]
    assert sleep_recorder.delays == [1.0, 4.0, 16.0]


def test_sync__a_404_is_permanent_and_not_retried(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder
):
    card = card_factory(program_factory(), inactive_days=0.01, google="deleted")
    fake_wallet.faults.missing_keys.add("google:deleted")

    result = sync_wallet_passes(sleep=sleep_recorder)

    assert result["failed_card_ids"] == [card.pk]
    assert sleep_recorder.delays == [] and len(fake_wallet.calls) == 1
    assert issubclass(PermanentWalletError, Exception)


def test_sync_job__over_5_percent_failures_alerts_and_flags_the_run(
    frozen_now, program_factory, card_factory, fake_wallet, caplog
):
    program = program_factory()
    cards = [card_factory(program, inactive_days=0.01, google=f"g{i}") for i in range(40)]
    for card in cards[:3]:  # 7.5%: permanent 404s, so the real job sleeps for nothing
        fake_wallet.faults.missing_keys.add(f"google:{card.google_object_id}")

    run = run_job_now("loyalty.sync_wallet_passes")

    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.needs_attention is True
    assert run.result["failed_card_ids"] == sorted(c.pk for c in cards[:3])
    assert (run.result["failure_rate"], run.result["alert"], run.result["systemic"]) == (
        0.075,
        True,
        False,
    )
    assert "ALERT loyalty.sync_wallet_passes: wallet sync failure rate 7.5% > 5%" in caplog.text


def test_sync_job__under_5_percent_is_not_flagged_and_over_10_failures_is_systemic(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    cards = [card_factory(program, inactive_days=0.01, apple=f"a{i}") for i in range(300)]
    for card in cards[:11]:  # 3.7%: below the alert rate, but more than 10 cards
        fake_wallet.faults.missing_keys.add(f"apple:{card.apple_serial_number}")

    run = run_job_now("loyalty.sync_wallet_passes")

    run.refresh_from_db()
    assert (run.result["failed"], run.result["alert"], run.result["systemic"]) == (11, False, True)
    assert run.needs_attention is True  # systemic is worth a look even below 5%


def test_sync__calls_run_concurrently_so_slow_wallets_do_not_add_up(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    for i in range(200):
        card_factory(program, inactive_days=0.01, google=f"g{i}")
    fake_wallet.faults.latency_seconds = 0.05  # 10 s if called one after another

    result = sync_wallet_passes(max_workers=32)

    assert result["synced"] == 200
    assert result["elapsed_seconds"] < 3


def test_sync__all_since_covers_an_older_window(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    card = card_factory(program, inactive_days=2, google="older")

    assert sync_wallet_passes()["cards_considered"] == 0
    result = sync_wallet_passes(since=frozen_now - timedelta(days=3))

    assert result["cards_considered"] == 1 and result["failed"] == 0
    assert fake_wallet.calls_for("google:older")[0].body["loyaltyPoints"]["balance"]["int"] == (
        card.points_balance
    )


def test_sync_job__wallet_endpoints_are_never_job_arguments(
    frozen_now, program_factory, card_factory, fake_wallet
):
    card_factory(program_factory(), inactive_days=0.01, google="g-1")
    with FakeWallet() as elsewhere:
        with pytest.raises(BadJobArguments, match="wallet_base_url"):
            run_job_now(
                "loyalty.sync_wallet_passes", kwargs={"wallet_base_url": elsewhere.base_url}
            )
        with pytest.raises(BadJobArguments):
            enqueue_job(
                "loyalty.sync_wallet_passes",
                kwargs={"wallet_base_url": elsewhere.base_url},
                trigger="admin",
            )
        with pytest.raises(TypeError):
            call_command("sync_wallet_passes", wallet_url=elsewhere.base_url)

        run = run_job_now("loyalty.sync_wallet_passes")

    assert elsewhere.calls == [] and not JobRun.objects.exclude(pk=run.pk).exists()
    # The token only ever goes to the endpoint configured in settings.
    assert [c.authorization for c in fake_wallet.calls] == ["Bearer google-test-token"]
    assert run.result["synced"] == 1
