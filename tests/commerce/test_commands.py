"""Commands check input first (one line, exit 2, nothing changed), then run the job in-process."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management.base import CommandError

from commerce.models import Cart, Order
from jobs.models import JobRun
from tests.commands import run_command
from tests.commerce.conftest import NOW, TODAY

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("process_due_subscriptions", "--date", "2026-02-30"),
            "--date '2026-02-30' is not a date (YYYY-MM-DD)",
        ),
        (
            ("process_due_subscriptions", "--date", "tomorrow"),
            "--date 'tomorrow' is not a date (YYYY-MM-DD)",
        ),
        (("process_due_subscriptions", "--subscription", "x1"), "--subscription 'x1' is not an id"),
        (
            ("process_due_subscriptions", "--subscription", "999999"),
            "no subscription with id 999999",
        ),
        (
            ("send_subscription_renewal_reminders", "--date", "03/01/2026"),
            "--date '03/01/2026' is not a date (YYYY-MM-DD)",
        ),
        (
            ("cleanup_expired_carts", "--days", "0"),
            "--days '0' must be a whole number of days, 1 or more",
        ),
        (
            ("cleanup_expired_carts", "--days", "ten"),
            "--days 'ten' must be a whole number of days, 1 or more",
        ),
        (
            ("cleanup_old_audit_logs", "--days", "-5"),
            "--days '-5' must be a whole number of days, 1 or more",
        ),
        (("process_webhook_event", "evt_missing"), "no webhook event 'evt_missing'"),
        # Unicode digits: "²".isdigit() is true but int("²") raises; int("٣") is 3.
        (("process_due_subscriptions", "--subscription", "²"), "--subscription '²' is not an id"),
        (("process_webhook_event", "²"), "no webhook event '²'"),
        (
            ("cleanup_expired_carts", "--days", "٣"),
            "--days '٣' must be a whole number of days, 1 or more",
        ),
    ],
)
def test_bad_input__one_line_exit_2_nothing_recorded(args, message, subscription_factory):
    subscription_factory(next_delivery_date=TODAY - timedelta(days=400))
    with pytest.raises(CommandError) as caught:
        run_command(*args)

    assert str(caught.value) == message and caught.value.returncode == 2
    assert not JobRun.objects.exists() and not Order.objects.exists()


def test_bad_date__real_process_exits_2_with_one_line():
    proc = subprocess.run(
        [sys.executable, "manage.py", "process_due_subscriptions", "--date", "2026-13-01"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "CommandError: --date '2026-13-01' is not a date (YYYY-MM-DD)"


def test_process_due_subscriptions__date_and_dry_run(frozen_now, subscription_factory):
    subscription_factory(next_delivery_date=TODAY + timedelta(days=3))

    preview = run_command(
        "process_due_subscriptions", "--dry-run", "--date", str(TODAY + timedelta(days=3))
    )
    assert '"processed": 1' in preview and '"dry_run": true' in preview
    assert not Order.objects.exists()

    out = run_command("process_due_subscriptions", "--date", str(TODAY + timedelta(days=3)))
    assert "succeeded" in out and '"orders_created": 1' in out
    run_row = JobRun.objects.filter(job="commerce.process_due_subscriptions").latest("pk")
    assert run_row.trigger == "command" and run_row.result["orders_created"] == 1


def test_cleanup_expired_carts__days(frozen_now):
    Cart.objects.create(updated_at=NOW - timedelta(days=8))
    out = run_command("cleanup_expired_carts", "--days", "7")
    assert '"empty_carts_deleted": 1' in out and not Cart.objects.exists()


def test_other_commands_run_their_job(frozen_now):
    for name in (
        "cleanup_expired_tokens",
        "cleanup_old_audit_logs",
        "send_subscription_renewal_reminders",
    ):
        assert "succeeded" in run_command(name)
    assert JobRun.objects.filter(status="succeeded").count() == 3
