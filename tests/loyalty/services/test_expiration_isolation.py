"""One program's absurd data never stops the nightly expiration for the others.

A program stored before the bound on `points_expiration_days` (5,000,000 days) made the
date arithmetic overflow and the whole run fail, every night, for every program. Now
that program is skipped, reported in the result and flagged on the run (history and
/health/), and the other programs are warned and expired as usual.
"""

import importlib

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from jobs.models import JobRun
from jobs.runner import run_job_now
from loyalty.models import LoyaltyCard, LoyaltyProgram
from loyalty.services.expiration import expire_points
from tests.admin_helpers import post_action, staff_client
from tests.loyalty.conftest import ledger_violations
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db

ABSURD = 5_000_000


def legacy_program(program: LoyaltyProgram, days: int) -> LoyaltyProgram:
    """Store `days` as a row from before the CHECK constraint (dropped in this test's
    transaction only: PostgreSQL rolls the DDL back with it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks: ALTER may run
        cursor.execute(
            "ALTER TABLE loyalty_loyaltyprogram DROP CONSTRAINT loyalty_program_expiration_days_max"
        )
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    LoyaltyProgram.objects.filter(pk=program.pk).update(points_expiration_days=days)
    program.refresh_from_db()
    return program


@pytest.fixture
def two_programs(frozen_now, program_factory, card_factory):
    broken = legacy_program(program_factory(expiration_days=365), ABSURD)
    good = program_factory(expiration_days=365)
    cards = {
        "broken": card_factory(broken, points=40, inactive_days=400),
        "due": card_factory(good, points=70, inactive_days=400, warned_days_ago=30),
        "warn": card_factory(good, points=30, inactive_days=355),
    }
    return broken, good, cards


def test_expire_points__absurd_program_reported_others_complete(two_programs):
    broken, good, cards = two_programs

    result = expire_points()

    assert result["status"] == "partial"
    assert result["failed_program_ids"] == [broken.pk]
    assert (result["programs_processed"], result["cards_processed"]) == (1, 1)
    assert (result["points_expired"], result["warnings_sent"]) == (70, 1)
    balances = dict(LoyaltyCard.objects.values_list("pk", "points_balance"))
    assert balances[cards["due"].pk] == 0 and balances[cards["broken"].pk] == 40
    assert ledger_violations() == []


def test_nightly_run__succeeds_for_the_others_and_is_flagged_with_the_program(two_programs):
    broken, _good, _cards = two_programs

    run = run_job_now("loyalty.expire_points", trigger=JobRun.Trigger.SCHEDULE)

    assert run.status == JobRun.Status.SUCCEEDED
    assert run.result["failed_program_ids"] == [broken.pk]
    assert run.needs_attention
    assert f"loyalty program {broken.pk} (" in run.attention_reason
    assert "OverflowError" in run.attention_reason
    say(f"expire_points with a 5,000,000-day program: {run.status}, {run.attention_reason}")


def test_expire_points_command__others_expired_and_exit_1_naming_the_program(two_programs):
    broken, _good, cards = two_programs

    with pytest.raises(CommandError, match=rf"programs \[{broken.pk}\] skipped") as caught:
        call_command("expire_points")

    assert caught.value.returncode == 1
    assert LoyaltyCard.objects.get(pk=cards["due"].pk).points_balance == 0


def test_dry_run__absurd_program_reported_too(two_programs):
    broken, _good, _cards = two_programs

    result = expire_points(dry_run=True)

    assert result["failed_program_ids"] == [broken.pk] and result["cards_processed"] == 1


def test_expire_now_confirmation__absurd_program_shown_not_a_500(client, two_programs):
    _broken, _good, cards = two_programs
    staff_client(
        client,
        "olga",
        [("loyalty", "view_loyaltycard"), ("loyalty", "change_loyaltycard"), ("jobs", "run_job")],
    )

    page = post_action(
        client,
        reverse("admin:loyalty_loyaltycard_changelist"),
        "expire_now",
        cards["broken"].pk,
        cards["due"].pk,
    )

    assert page.status_code == 200
    html = page.content.decode()
    assert f"expiration after {ABSURD} days is out of range: left alone" in html
    assert "70 points will be voided" in html
    assert not JobRun.objects.exists(), "a confirmation page queues nothing"


def test_database__refuses_an_absurd_value_written_around_the_form(program_factory):
    program = program_factory(expiration_days=365)

    with pytest.raises(IntegrityError), transaction.atomic():
        LoyaltyProgram.objects.filter(pk=program.pk).update(points_expiration_days=ABSURD)
    LoyaltyProgram.objects.filter(pk=program.pk).update(points_expiration_days=3650)


def test_migration__stored_absurd_values_become_never_expires(program_factory):
    """What the stored program did (nothing ever expired) is what it keeps doing."""
    broken = legacy_program(program_factory(expiration_days=365), ABSURD)
    kept = program_factory(expiration_days=3650)
    migration = importlib.import_module(
        "loyalty.migrations.0004_program_bounds_card_activity_default"
    )

    migration.never_expire_out_of_range(apps, None)

    broken.refresh_from_db()
    kept.refresh_from_db()
    assert (broken.points_expiration_days, kept.points_expiration_days) == (None, 3650)
