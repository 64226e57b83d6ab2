"""Commands check input first (one line, exit 2, nothing written) and record a JobRun."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exchanges.models import Exchange, Match, RateLimit
from jobs.models import JobRun

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("match_exchange", "999"), "exchange 999 does not exist"),
        (("send_due_reminders", "--exchange", "999"), "exchange 999 does not exist"),
        (("purge_completed", "--exchange", "999", "--no-input"), "exchange 999 does not exist"),
    ],
)
def test_bad_ids__one_line_error_exit_2_nothing_recorded(args, message):
    with pytest.raises(CommandError) as caught:
        run(*args)

    assert str(caught.value) == message and caught.value.returncode == 2
    assert not JobRun.objects.exists()


def test_wrong_state__one_line_error_exit_2(make_exchange):
    draft = make_exchange()
    matched = make_exchange(state="matched")

    with pytest.raises(CommandError, match=f"exchange {draft.pk} is draft; only matched") as c1:
        run("send_due_reminders", "--exchange", str(draft.pk))
    with pytest.raises(CommandError, match=f"exchange {matched.pk} is matched; only draft") as c2:
        run("match_exchange", str(matched.pk))
    with pytest.raises(CommandError, match=f"exchange {draft.pk} is draft; only completed"):
        run("purge_completed", "--exchange", str(draft.pk), "--no-input")

    assert c1.value.returncode == c2.value.returncode == 2
    assert list(Exchange.objects.values_list("state", flat=True)) == ["draft", "matched"]


def test_match_exchange__dry_run_changes_nothing_then_matches(make_exchange, make_participants):
    exchange = make_exchange()
    make_participants(exchange, 4)

    assert "'dry_run': True" in run("match_exchange", str(exchange.pk), "--dry-run")
    assert not Match.objects.exists()
    run("match_exchange", str(exchange.pk))
    assert Match.objects.count() == 4


def test_job_commands__dry_run_records_history_and_deletes_nothing():
    RateLimit.objects.create(key="k", expires_at=datetime.now(UTC) - timedelta(hours=1))

    output = run("cleanup_rate_limits", "--dry-run")

    assert "exchanges.cleanup_rate_limits run #" in output and '"would_delete": 1' in output
    job_run = JobRun.objects.get()
    assert (job_run.trigger, job_run.status, job_run.kwargs) == (
        "command",
        "succeeded",
        {"dry_run": True},
    )
    assert RateLimit.objects.count() == 1
    assert '"deleted": 1' in run("cleanup_rate_limits")
