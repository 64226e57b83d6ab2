"""loyalty.sync_wallet_passes against the wallet fakes: what is behind, per wallet, retries, alerts.

The fakes speak the real protocols (OAuth token + walletobjects over HTTP, APNs over
HTTP/2 and TLS); the clients are the production ones.
"""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import Client

from jobs.exceptions import BadJobArguments
from jobs.models import JobRun
from jobs.runner import enqueue_job, run_job_now
from loyalty.models import LoyaltyCard, WalletSyncState
from loyalty.services.apple_passes import authentication_token
from loyalty.services.wallet_sync import sync_wallet_passes
from tests.loyalty.conftest import NOW

pytestmark = pytest.mark.django_db


def bump(card: LoyaltyCard, points: int = 5) -> None:
    card.points_balance += points
    card.save(update_fields=["points_balance"])


def version(card: LoyaltyCard) -> int:
    return LoyaltyCard.objects.values_list("balance_version", flat=True).get(pk=card.pk)


def test_balance_version__moves_on_every_balance_change_by_any_sql_never_back(
    program_factory, card_factory
):
    card = card_factory(program_factory())
    first = version(card)
    stale = LoyaltyCard.objects.get(pk=card.pk)

    with connection.cursor() as cursor:  # as the expiration chunk SQL writes it
        cursor.execute("UPDATE loyalty_loyaltycard SET points_balance = 0 WHERE id = %s", [card.pk])
    second = version(card)
    stale.number = "renamed"
    stale.save()  # a stale instance: balance back to 100 (a change), version not reused
    third = version(card)
    LoyaltyCard.objects.filter(pk=card.pk).update(last_expiration_warning_at=NOW)  # not shown
    assert first < second < third == version(card)

    older = LoyaltyCard.objects.get(pk=card.pk)  # balance 100 at `third`
    bump(LoyaltyCard.objects.get(pk=card.pk), points=1)
    bump(LoyaltyCard.objects.get(pk=card.pk), points=-1)  # back to 100, two versions on
    newest = version(card)
    older.save()  # same balance, stale version: the stored version stays
    assert newest > third and version(card) == newest


def test_sync__pushes_every_wallet_behind_and_nothing_already_confirmed(
    frozen_now, program_factory, card_factory, fake_wallet, register_device
):
    program = program_factory()
    both = card_factory(program, points=42, google="issuer.g-1", apple="a-1")
    device = register_device(both)
    card_factory(program, points=5)  # no wallet pass
    old = card_factory(program, points=7, inactive_days=30, google="issuer.g-old")

    result = sync_wallet_passes()

    assert (result["cards_considered"], result["synced"], result["failed"]) == (2, 2, 0)
    google = fake_wallet.google.calls_for("issuer.g-1")
    assert [(c.method, c.body["loyaltyPoints"]["balance"]) for c in google] == [
        ("PATCH", {"int": 42})
    ]
    assert fake_wallet.google.calls_for("issuer.g-old")  # behind, however old the change
    [push] = fake_wallet.apns.pushes
    assert (push.device_token, push.topic, push.payload) == (
        device.push_token,
        "pass.com.example.loyalty",
        b"{}",
    )
    states = WalletSyncState.objects.filter(card=both).values_list("wallet", "synced_version")
    assert dict(states) == {"google": version(both), "apple": version(both)}

    again = sync_wallet_passes()  # nothing changed since: nothing to push
    assert again["cards_considered"] == 0 and len(fake_wallet.google.calls) == 2

    bump(old)
    third = sync_wallet_passes()
    assert third["cards_considered"] == 1
    assert fake_wallet.google.calls_for("issuer.g-old")[-1].body["loyaltyPoints"]["balance"] == {
        "int": 12
    }


def test_google_down_apple_up__apple_synced_card_failed_for_google_only(
    frozen_now, program_factory, card_factory, fake_wallet, register_device, sleep_recorder
):
    card = card_factory(program_factory(), google="issuer.g-1", apple="a-1")
    register_device(card)
    fake_wallet.google.faults.failing_ids.add("issuer.g-1")

    result = sync_wallet_passes(sleep=sleep_recorder)

    assert result["failed_card_ids"] == [card.pk]
    assert result["wallets"]["google"]["failed_card_ids"] == [card.pk]
    assert result["wallets"]["apple"]["failed_card_ids"] == []
    assert result["wallets"]["apple"]["synced"] == 1
    assert len(fake_wallet.apns.pushes) == 1
    assert len(fake_wallet.google.calls_for("issuer.g-1")) == 4
    assert sleep_recorder.delays == [1.0, 4.0, 16.0]
    google = WalletSyncState.objects.get(card=card, wallet="google")
    apple = WalletSyncState.objects.get(card=card, wallet="apple")
    assert (google.synced_version, google.failures) == (0, 1)
    assert "HTTP 503" in google.last_error
    assert (apple.synced_version, apple.failures) == (version(card), 0)

    fake_wallet.google.faults.failing_ids.clear()
    retry = sync_wallet_passes(sleep=sleep_recorder)  # the next hourly run: Google only
    assert retry["wallets"]["google"]["synced"] == 1
    assert retry["wallets"]["apple"]["synced"] == 0 and len(fake_wallet.apns.pushes) == 1


def test_outage_of_three_hours_then_recovery__every_card_changed_during_it_synced_once(
    program_factory, card_factory, fake_wallet, sleep_recorder
):
    start = NOW
    program = program_factory()
    cards = [card_factory(program, google=f"issuer.c{i}", now=start) for i in range(40)]
    with time_machine.travel(start, tick=False):
        assert sync_wallet_passes(sleep=sleep_recorder)["synced"] == 40
    fake_wallet.google.calls.clear()
    fake_wallet.google.faults.failing_ids.update(c.google_object_id for c in cards)

    for hour in range(1, 4):  # Google answers 503 for three hourly runs
        with time_machine.travel(start + timedelta(hours=hour, minutes=-30), tick=False):
            for card in cards[(hour - 1) * 12 : hour * 12 + 2]:  # 2 cards change twice
                bump(card)
        with time_machine.travel(start + timedelta(hours=hour), tick=False):
            outage = sync_wallet_passes(sleep=sleep_recorder)
        assert outage["synced"] == 0
        assert outage["stopped"] == [
            "google: 10+ cards failed and none synced (wallet down?); the rest is left for "
            "the next run"
        ]
    changed = cards[:38]
    assert outage["behind_after"]["google"] == len(changed)
    failing_calls = len(fake_wallet.google.calls)

    fake_wallet.google.faults.failing_ids.clear()
    with time_machine.travel(start + timedelta(hours=4), tick=False):
        recovery = sync_wallet_passes(sleep=sleep_recorder)
        after = sync_wallet_passes(sleep=sleep_recorder)

    assert (recovery["synced"], recovery["failed"]) == (len(changed), 0)
    ok_calls = [c for c in fake_wallet.google.calls[failing_calls:] if c.status == 200]
    assert sorted(c.key for c in ok_calls) == sorted(c.google_object_id for c in changed)
    for card in changed:
        card.refresh_from_db()
        assert fake_wallet.google.objects[card.google_object_id]["loyaltyPoints"]["balance"] == {
            "int": card.points_balance
        }
    assert after["cards_considered"] == 0 and recovery["behind_after"] == {"google": 0, "apple": 0}


def test_bounded_run__leaves_the_rest_for_the_next_and_failures_go_to_the_back(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder
):
    program = program_factory()
    cards = [card_factory(program, google=f"issuer.c{i}") for i in range(5)]
    fake_wallet.google.faults.failing_ids.add("issuer.c0")  # 503: fails after its retries

    first = sync_wallet_passes(max_cards=2, sleep=sleep_recorder)
    second = sync_wallet_passes(max_cards=2, sleep=sleep_recorder)
    third = sync_wallet_passes(max_cards=2, sleep=sleep_recorder)

    assert (first["cards_considered"], first["failed_card_ids"]) == (2, [cards[0].pk])
    assert first["behind_after"]["google"] == 4
    # c0 (4 attempts) and c1, then c2 and c3, then c4 and c0 again (4 attempts).
    assert sorted(c.key for c in fake_wallet.google.calls) == sorted(
        ["issuer.c0"] * 8 + ["issuer.c1", "issuer.c2", "issuer.c3", "issuer.c4"]
    )
    assert (second["synced"], third["failed"], third["behind_after"]["google"]) == (2, 1, 1)
    assert WalletSyncState.objects.get(card=cards[0], wallet="google").failures == 2


def test_sync__retries_with_the_seed_delays_then_reports_failed_card_ids(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder
):
    program = program_factory()
    flaky = card_factory(program, google="issuer.flaky")
    broken = card_factory(program, google="issuer.broken")
    fake_wallet.google.faults.flaky_ids["issuer.flaky"] = 3  # succeeds on attempt 4
    fake_wallet.google.faults.failing_ids.add("issuer.broken")

    result = sync_wallet_passes(sleep=sleep_recorder)

    assert (result["synced"], result["failed"], result["failed_card_ids"]) == (1, 1, [broken.pk])
    assert len(fake_wallet.google.calls_for("issuer.flaky")) == 4
    assert len(fake_wallet.google.calls_for("issuer.broken")) == 4
    assert sorted(sleep_recorder.delays) == sorted([1.0, 4.0, 16.0] * 2)
    assert flaky.pk not in result["failed_card_ids"]


def test_sync__a_timeout_is_retried_like_a_5xx(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder, settings
):
    settings.LOYALTY_WALLET_TIMEOUT_SECONDS = 0.2
    fake_wallet.google.faults.timeout_rate = 1.0
    fake_wallet.google.faults.hang_seconds = 0.4
    card = card_factory(program_factory(), google="issuer.slow")

    result = sync_wallet_passes(sleep=sleep_recorder)

    assert result["failed_card_ids"] == [card.pk]
    assert sleep_recorder.delays == [1.0, 4.0, 16.0]


def test_apns_410__removes_the_device_registration_and_the_pass_counts_synced(
    frozen_now, program_factory, card_factory, fake_wallet, register_device
):
    card = card_factory(program_factory(), apple="a-1")
    gone, kept = register_device(card), register_device(card)
    fake_wallet.apns.faults.unregistered.add(gone.push_token)

    result = sync_wallet_passes()

    assert [p.status for p in fake_wallet.apns.pushes_to(gone.push_token)] == [410]
    assert [p.status for p in fake_wallet.apns.pushes_to(kept.push_token)] == [200]
    apple = result["wallets"]["apple"]
    assert (apple["synced"], apple["devices_pushed"], apple["devices_removed"]) == (1, 1, 1)
    assert list(card.apple_registrations.values_list("pk", flat=True)) == [kept.pk]


@pytest.mark.django_db(transaction=True)  # the device calls in while the sync's threads push
def test_apns_410_for_an_old_token__a_device_that_re_registered_meanwhile_keeps_its_new_one(
    frozen_now, program_factory, card_factory, fake_wallet, register_device
):
    """APNs says the token the sync read is gone while the device (a restored phone) has
    just registered its new token: the registration now holds the new token and stays."""
    card = card_factory(program_factory(), apple="a-1")
    old = register_device(card)
    new_token = "cd" * 32
    fake_wallet.apns.faults.failure_rate = 1.0  # APNs busy: the push is retried

    def device_re_registers_while_the_push_waits(seconds: float) -> None:
        fake_wallet.apns.faults.failure_rate = 0.0
        fake_wallet.apns.faults.unregistered.add(old.push_token)
        answer = Client().post(
            f"/passkit/v1/devices/{old.device_library_identifier}/registrations/"
            f"pass.com.example.loyalty/a-1",
            {"pushToken": new_token},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"ApplePass {authentication_token('a-1')}",
        )
        assert answer.status_code == 200  # a known device with a new token
        connection.close()  # this thread's connection

    sync_wallet_passes(sleep=device_re_registers_while_the_push_waits)

    assert [p.status for p in fake_wallet.apns.pushes_to(old.push_token)] == [503, 410]
    assert list(card.apple_registrations.values_list("push_token", flat=True)) == [new_token]
    bump(card)
    sync_wallet_passes()
    assert [p.status for p in fake_wallet.apns.pushes_to(new_token)] == [200]


def test_apns_refusing_the_credentials__stops_apple_for_the_run(
    frozen_now, program_factory, card_factory, fake_wallet, register_device, settings
):
    program = program_factory()
    for i in range(4):
        register_device(card_factory(program, apple=f"a-{i}"))
    fake_wallet.apns.faults.refuse_certificate = True

    result = sync_wallet_passes()

    assert len(fake_wallet.apns.pushes) == 1
    assert result["wallets"]["apple"]["skipped"] == 4
    assert result["stopped"][0].startswith(
        "apple: credentials refused: APNs refused the pass type certificate: check "
        "LOYALTY_APPLE_PASS_CERT_FILE"
    )

    settings.LOYALTY_APPLE_APNS_AUTH = "token"
    fake_wallet.apns.faults.refuse_provider_token = True
    token = sync_wallet_passes()
    assert token["stopped"][0].startswith(
        "apple: credentials refused: APNs refused the provider token: check "
        "LOYALTY_APPLE_APNS_KEY_FILE, LOYALTY_APPLE_APNS_KEY_ID and LOYALTY_APPLE_TEAM_ID "
        "(InvalidProviderToken)"
    )


def test_sync_job__over_5_percent_failures_alerts_and_flags_the_run(
    frozen_now, program_factory, card_factory, fake_wallet, caplog, no_backoff_sleep
):
    program = program_factory()
    cards = [card_factory(program, google=f"issuer.g{i}") for i in range(40)]
    for card in cards[-3:]:  # 7.5%: 503 after every retry
        fake_wallet.google.faults.failing_ids.add(card.google_object_id)

    run = run_job_now("loyalty.sync_wallet_passes")

    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.needs_attention is True
    assert run.result["failed_card_ids"] == sorted(c.pk for c in cards[-3:])
    assert (run.result["failure_rate"], run.result["alert"], run.result["systemic"]) == (
        0.075,
        True,
        False,
    )
    assert "ALERT loyalty.sync_wallet_passes: wallet sync failure rate 7.5% > 5%" in caplog.text
    assert "(3 of 40 cards attempted failed after retries)" in run.attention_reason


def test_sync_job__under_5_percent_is_not_an_alert_but_over_10_failures_is_systemic(
    frozen_now, program_factory, card_factory, fake_wallet, no_backoff_sleep
):
    program = program_factory()
    cards = [card_factory(program, google=f"issuer.g{i}") for i in range(300)]
    for card in cards[-11:]:  # 3.7%: below the alert rate, but more than 10 cards
        fake_wallet.google.faults.failing_ids.add(card.google_object_id)

    run = run_job_now("loyalty.sync_wallet_passes")

    run.refresh_from_db()
    assert (run.result["failed"], run.result["alert"], run.result["systemic"]) == (11, False, True)
    assert run.needs_attention is True  # systemic is worth a look even below 5%


def test_sync__calls_run_concurrently_so_slow_wallets_do_not_add_up(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    for i in range(200):
        card_factory(program, google=f"issuer.g{i}")
    fake_wallet.google.faults.latency_seconds = 0.05  # 10 s if called one after another

    result = sync_wallet_passes(max_workers=32)

    assert result["synced"] == 200
    assert result["elapsed_seconds"] < 3


def test_sync__all_since_pushes_again_cards_changed_in_a_window_even_if_confirmed(
    frozen_now, program_factory, card_factory, fake_wallet
):
    program = program_factory()
    card = card_factory(program, inactive_days=2, google="issuer.older")
    card_factory(program, inactive_days=5, google="issuer.oldest")
    sync_wallet_passes()

    result = sync_wallet_passes(since=frozen_now - timedelta(days=3))

    assert (result["mode"], result["cards_considered"], result["failed"]) == ("since", 1, 0)
    assert len(fake_wallet.google.calls_for("issuer.older")) == 2
    assert card.pk not in result["failed_card_ids"]


def test_sync_job__wallet_endpoints_are_never_job_arguments(
    frozen_now, program_factory, card_factory, fake_wallet
):
    card_factory(program_factory(), google="issuer.g-1")
    elsewhere = "http://127.0.0.1:9"
    with pytest.raises(BadJobArguments, match="wallet_base_url"):
        run_job_now("loyalty.sync_wallet_passes", kwargs={"wallet_base_url": elsewhere})
    with pytest.raises(BadJobArguments):
        enqueue_job(
            "loyalty.sync_wallet_passes", kwargs={"wallet_base_url": elsewhere}, trigger="admin"
        )
    with pytest.raises(TypeError):
        call_command("sync_wallet_passes", wallet_url=elsewhere)

    run = run_job_now("loyalty.sync_wallet_passes")

    assert not JobRun.objects.exclude(pk=run.pk).exists()
    assert [c.key for c in fake_wallet.google.calls] == ["issuer.g-1"]
    assert run.result["synced"] == 1


def test_apns_bad_device_token__removed_once_apns_accepted_a_push_else_the_card_fails(
    frozen_now, program_factory, card_factory, fake_wallet, register_device
):
    program = program_factory()
    lonely = card_factory(program, apple="a-0")
    bad_alone = register_device(lonely)
    fake_wallet.apns.faults.bad_tokens.add(bad_alone.push_token)

    first = sync_wallet_passes()  # nothing accepted yet: maybe our APNs URL is wrong for all

    assert first["wallets"]["apple"]["failed_card_ids"] == [lonely.pk]
    assert lonely.apple_registrations.count() == 1

    good = card_factory(program, apple="a-1")
    register_device(good)
    bump(lonely)  # cards behind: `good` (never tried) first, then `lonely`
    second = sync_wallet_passes()

    assert [p.status for p in fake_wallet.apns.pushes] == [400, 200, 400]
    assert second["wallets"]["apple"]["devices_removed"] == 1
    assert second["failed"] == 0 and lonely.apple_registrations.count() == 0


def test_cards_refused_for_good__quarantined_reported_once_and_retried_after_they_change(
    program_factory, card_factory, fake_wallet, no_backoff_sleep
):
    """Three cards Google refuses (HTTP 400) in a quiet day of 48 hourly runs: one report,
    no failure-rate alert; a refused card that changes is tried again."""
    program = program_factory()
    refused = [card_factory(program, google=f"issuer.bad{i}") for i in range(3)]
    for card in refused:
        fake_wallet.google.faults.rejected_ids.add(card.google_object_id)
    quiet = card_factory(program, google="issuer.quiet")
    runs = []
    for hour in range(48):
        with time_machine.travel(NOW + timedelta(hours=hour), tick=False):
            if hour % 12 == 6:
                bump(quiet)  # now and then a sale on a healthy card
            runs.append(run_job_now("loyalty.sync_wallet_passes"))

    first, *rest = runs
    assert first.result["quarantined_card_ids"] == sorted(c.pk for c in refused)
    assert (first.result["failure_rate"], first.result["alert"]) == (0.0, False)
    assert first.needs_attention and "3 card(s) refused for good" in first.attention_reason
    assert not any(run.needs_attention for run in rest)  # reported once
    assert sum(run.result["quarantined"] for run in rest) == 0
    calls = [c.key for c in fake_wallet.google.calls if "bad" in c.key]
    assert sorted(calls) == sorted(c.google_object_id for c in refused)  # one call each

    bump(refused[0])  # the card changes: one new try
    again = sync_wallet_passes()
    assert (again["cards_considered"], again["quarantined_card_ids"]) == (1, [refused[0].pk])


def test_apns_device_token_not_for_topic__one_registration_never_stops_apple_for_everyone(
    frozen_now, program_factory, card_factory, fake_wallet, register_device, settings
):
    """A pass registered with another topic's push token (anyone holding a pass can call
    the registration URL): APNs answers that one device 400 DeviceTokenNotForTopic,
    which Apple lists with BadDeviceToken as "don't retry". The other customers' passes
    are pushed, hour after hour, and the registration goes once APNs accepted a push."""
    # One push at a time, in card order: the stray's answer comes before any accepted push
    # (with pushes in flight at once, whichever APNs answers first decides its outcome).
    settings.LOYALTY_WALLET_SYNC_CONCURRENCY = 1
    program = program_factory()
    odd = card_factory(program, apple="a-0")  # tried first: the lowest id, never tried
    stray = register_device(odd)
    fake_wallet.apns.faults.other_topic_tokens.add(stray.push_token)
    others = [card_factory(program, apple=f"a-{i}") for i in (1, 2)]
    devices = [register_device(card) for card in others]

    first = sync_wallet_passes()

    assert first["stopped"] == []
    assert [p.status for d in devices for p in fake_wallet.apns.pushes_to(d.push_token)] == [
        200,
        200,
    ]
    assert first["wallets"]["apple"]["failed_card_ids"] == [odd.pk]

    for card in (odd, *others):
        bump(card)
    second = sync_wallet_passes()  # the hour after

    assert second["stopped"] == [] and second["failed"] == 0
    assert second["wallets"]["apple"]["devices_removed"] == 1
    assert odd.apple_registrations.count() == 0
    assert len([p for p in fake_wallet.apns.pushes if p.status == 200]) == 4
