"""Commands refuse bad input through the job's own check (one line naming the argument, exit 2,
nothing changed), then run the job in-process."""

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


PROCESS = "commerce.process_due_subscriptions: argument"
CARTS = "commerce.cleanup_expired_carts: argument"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("process_due_subscriptions", "--date", "2026-02-30"),
            f"{PROCESS} date='2026-02-30' must be a date (YYYY-MM-DD)",
        ),
        (
            ("process_due_subscriptions", "--date", "tomorrow"),
            f"{PROCESS} date='tomorrow' must be a date (YYYY-MM-DD)",
        ),
        (
            ("process_due_subscriptions", "--subscription", "x1"),
            f"{PROCESS} subscription_ids=['x1'] has an item 'x1' that is not int",
        ),
        (
            ("process_due_subscriptions", "--subscription", "999999"),
            "no subscription with id 999999",
        ),
        (
            ("send_subscription_renewal_reminders", "--date", "03/01/2026"),
            "commerce.send_subscription_renewal_reminders: argument date='03/01/2026'"
            " must be a date (YYYY-MM-DD)",
        ),
        (("cleanup_expired_carts", "--days", "0"), f"{CARTS} older_than_days=0 must be >= 1"),
        (
            ("cleanup_expired_carts", "--days", "ten"),
            f"{CARTS} older_than_days='ten' is not int | None",
        ),
        (
            ("cleanup_old_audit_logs", "--days", "-5"),
            "commerce.cleanup_old_audit_logs: argument older_than_days=-5 must be >= 1",
        ),
        (("process_webhook_event", "evt_missing"), "no webhook event 'evt_missing'"),
        (("process_webhook_event", "999999"), "no webhook event 999999"),
        # Unicode digits: "²".isdigit() is true but int("²") raises; int("٣") is 3.
        (
            ("process_due_subscriptions", "--subscription", "²"),
            f"{PROCESS} subscription_ids=['²'] has an item '²' that is not int",
        ),
        (("process_webhook_event", "²"), "no webhook event '²'"),
        (
            ("cleanup_expired_carts", "--days", "٣"),
            f"{CARTS} older_than_days='٣' is not int | None",
        ),
        (
            ("cleanup_expired_carts", "--days", " 3_0 "),
            f"{CARTS} older_than_days=' 3_0 ' is not int | None",
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
    assert proc.stderr.strip() == (
        f"CommandError: {PROCESS} date='2026-13-01' must be a date (YYYY-MM-DD)"
    )


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
