"""loyalty.push_wallet_changes, the minutely sweep: a change reaches both wallets within a
minute of its commit (frozen clock: the fakes stamp each call), an idle minute is one
query and no remote call, and a card confirmed already is not pushed again."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.registry import get_job
from jobs.runner import run_job_now
from loyalty.models import LoyaltyCard, WalletChange
from loyalty.services.wallet_sync import push_wallet_changes, sync_wallet_passes

pytestmark = pytest.mark.django_db
#: A minute boundary: the sweep's cron (* * * * *) fires at each one.
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAX_LAG_SECONDS = 90


def earn(card: LoyaltyCard, points: int) -> None:
    """A purchase at the till: one committed UPDATE (the trigger queues the card)."""
    LoyaltyCard.objects.filter(pk=card.pk).update(points_balance=points)


def test_sweep__a_balance_change_reaches_both_wallets_within_a_minute_of_its_commit(
    program_factory, card_factory, fake_wallet, register_device
):
    assert get_job("loyalty.push_wallet_changes").cron == "* * * * *"
    program = program_factory()
    with time_machine.travel(T0, tick=False):
        card = card_factory(program, points=10, google="issuer.g1", apple="a-1", now=T0)
        device = register_device(card)
        sync_wallet_passes()  # the pass as issued: confirmed
        run_job_now("loyalty.push_wallet_changes")  # the 12:00 sweep
    calls_before = len(fake_wallet.google.calls)

    lags = []
    # Just after a sweep, mid-minute, just before the next: one change in each minute.
    for minute, second in enumerate((1, 30, 59)):
        committed = T0 + timedelta(minutes=minute, seconds=second)
        with time_machine.travel(committed, tick=False):
            earn(card, 10 + second)
        sweep_at = committed.replace(second=0) + timedelta(minutes=1)
        with time_machine.travel(sweep_at, tick=False):
            run = run_job_now("loyalty.push_wallet_changes")
        assert run.result["changes_taken"] == 1 and run.result["synced"] == 1
        patch = fake_wallet.google.calls[-1]
        push = fake_wallet.apns.pushes_to(device.push_token)[-1]
        assert patch.body["loyaltyPoints"]["balance"] == {"int": 10 + second}
        lags += [patch.at - committed.timestamp(), push.at - committed.timestamp()]

    assert len(fake_wallet.google.calls) - calls_before == 3
    assert max(lags) <= 60 < MAX_LAG_SECONDS
    assert sorted(lags) == [1, 1, 30, 30, 59, 59]


def test_sweep__an_idle_minute_is_one_query_and_no_remote_call(
    program_factory, card_factory, fake_wallet
):
    card_factory(program_factory(), google="issuer.g1")
    sync_wallet_passes()
    WalletChange.objects.all().delete()
    calls = len(fake_wallet.google.calls) + len(fake_wallet.apns.pushes)

    with CaptureQueriesContext(connection) as queries:
        result = push_wallet_changes()

    assert result == {"mode": "changes", "cards_considered": 0, "changes_taken": 0}
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["DELETE"]
    assert len(fake_wallet.google.calls) + len(fake_wallet.apns.pushes) == calls


def test_sweep__pushes_only_wallets_behind_and_leaves_failures_to_the_hourly_run(
    frozen_now, program_factory, card_factory, fake_wallet, sleep_recorder
):
    program = program_factory()
    confirmed = card_factory(program, google="issuer.ok")
    failing = card_factory(program, google="issuer.bad")
    sync_wallet_passes()
    earn(confirmed, 1)
    earn(failing, 2)
    sync_wallet_passes(card_ids=[confirmed.pk])  # someone pushed this one already
    fake_wallet.google.faults.failing_ids.add("issuer.bad")
    fake_wallet.google.calls.clear()

    result = push_wallet_changes(sleep=sleep_recorder)

    assert (result["changes_taken"], result["cards_considered"]) == (2, 1)
    assert {c.key for c in fake_wallet.google.calls} == {"issuer.bad"}  # and its retries
    assert result["failed_card_ids"] == [failing.pk]
    assert push_wallet_changes()["changes_taken"] == 0  # not retried every minute
    fake_wallet.google.faults.failing_ids.clear()
    assert sync_wallet_passes()["synced"] == 1  # the hourly safety net


def test_sweep__cards_without_a_pass_or_unchanged_content_are_never_queued(
    frozen_now, program_factory, card_factory
):
    program = program_factory()
    plain = card_factory(program)
    with_pass = card_factory(program, google="issuer.g1")
    earn(plain, 5)
    LoyaltyCard.objects.filter(pk=with_pass.pk).update(last_expiration_warning_at=frozen_now)

    assert not WalletChange.objects.exists()
    LoyaltyCard.objects.filter(pk=with_pass.pk).update(is_active=False)
    assert list(WalletChange.objects.values_list("card_id", flat=True)) == [with_pass.pk]
