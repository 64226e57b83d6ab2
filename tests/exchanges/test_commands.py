"""Commands check input first (one line, exit 2, nothing recorded), then run the job in-process
and record a JobRun; a failed run is one line, exit 1."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management.base import CommandError

from exchanges.models import Exchange, Exclusion, Match, RateLimit
from jobs.models import JobRun
from jobs.runs.locks import acquire_lease
from tests.commands import run_command

pytestmark = pytest.mark.django_db


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
        run_command(*args)

    assert str(caught.value) == message and caught.value.returncode == 2
    assert not JobRun.objects.exists()


def test_wrong_state__one_line_error_exit_2(make_exchange):
    draft = make_exchange()
    matched = make_exchange(state="matched")

    with pytest.raises(CommandError, match=f"exchange {draft.pk} is draft; only matched") as c1:
        run_command("send_due_reminders", "--exchange", str(draft.pk))
    with pytest.raises(CommandError, match=f"exchange {matched.pk} is matched; only draft") as c2:
        run_command("match_exchange", str(matched.pk))
    with pytest.raises(CommandError, match=f"exchange {draft.pk} is draft; only completed"):
        run_command("purge_completed", "--exchange", str(draft.pk), "--no-input")

    assert c1.value.returncode == c2.value.returncode == 2
    assert list(Exchange.objects.values_list("state", flat=True)) == ["draft", "matched"]
    assert not JobRun.objects.exists()


def test_match_exchange__dry_run_changes_nothing_then_matches__both_recorded(
    make_exchange, make_participants
):
    exchange = make_exchange()
    make_participants(exchange, 4)

    output = run_command("match_exchange", str(exchange.pk), "--dry-run")

    assert "exchanges.match_exchange run #" in output and '"dry_run": true' in output
    assert not Match.objects.exists()
    output = run_command("match_exchange", str(exchange.pk))
    assert " succeeded: " in output and '"participants": 4' in output
    assert Match.objects.count() == 4
    runs = list(JobRun.objects.order_by("pk").values_list("job", "trigger", "status", "kwargs"))
    assert runs == [
        (
            "exchanges.match_exchange",
            "command",
            "succeeded",
            {"exchange_id": exchange.pk, "dry_run": True},
        ),
        ("exchanges.match_exchange", "command", "succeeded", {"exchange_id": exchange.pk}),
    ]
    assert JobRun.objects.filter(triggered_by__startswith="cli").count() == 2


def test_match_exchange__impossible_draw__recorded_failed_one_line_exit_1_no_retry(
    make_exchange, make_participants
):
    exchange = make_exchange()
    a, b = make_participants(exchange, 2)
    Exclusion.objects.create(exchange=exchange, participant_a=a, participant_b=b)

    with pytest.raises(CommandError) as caught:
        run_command("match_exchange", str(exchange.pk))

    job_run = JobRun.objects.get()  # no retry run: the error is permanent
    message = str(caught.value)
    assert caught.value.returncode == 1 and "\n" not in message
    assert message.startswith(f"exchanges.match_exchange run #{job_run.pk} failed: ")
    assert "MatchingImpossible: no draw satisfies the exclusions: participant" in message
    assert job_run.status == "failed" and job_run.error.startswith("MatchingImpossible: ")
    assert not Match.objects.exists()


def test_match_exchange__single_flight_per_exchange(make_exchange, make_participants):
    busy, free = make_exchange(), make_exchange()
    for exchange in (busy, free):
        make_participants(exchange, 3)
    acquire_lease(key=f"exchanges:match:{busy.pk}", owner="someone-else", lease_seconds=60)

    with pytest.raises(CommandError) as caught:
        run_command("match_exchange", str(busy.pk))
    output = run_command("match_exchange", str(free.pk))

    assert caught.value.returncode == 3 and " skipped: " in str(caught.value)
    assert f"exchanges:match:{busy.pk} is held by someone-else" in str(caught.value)
    assert " succeeded: " in output
    assert dict(JobRun.objects.values_list("kwargs__exchange_id", "status")) == {
        busy.pk: "skipped",
        free.pk: "succeeded",
    }
    assert list(Match.objects.values_list("exchange_id", flat=True).distinct()) == [free.pk]


def test_job_commands__dry_run_records_history_and_deletes_nothing():
    RateLimit.objects.create(key="k", expires_at=datetime.now(UTC) - timedelta(hours=1))

    output = run_command("cleanup_rate_limits", "--dry-run")

    assert "exchanges.cleanup_rate_limits run #" in output and '"would_delete": 1' in output
    job_run = JobRun.objects.get()
    assert (job_run.trigger, job_run.status, job_run.kwargs) == (
        "command",
        "succeeded",
        {"dry_run": True},
    )
    assert RateLimit.objects.count() == 1
    output = run_command("cleanup_rate_limits")
    assert '"deleted": 1' in output
    assert "exchanges.cleanup_rate_limits: 1 rows\n" in output  # progress, plain off a TTY
