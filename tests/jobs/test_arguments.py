"""Arguments are checked before a run exists: a typo records nothing and /health/ stays green."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from exchanges.models import Exchange, Participant
from jobs.arguments import Range, check_types_and_bounds
from jobs.exceptions import BadJobArguments
from jobs.health.checks import check_recent_failures
from jobs.models import JobRun
from tests.admin_helpers import post_action, staff_client

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int]:
    """Runs recorded, queue rows, one-off (retry) schedules: all must stay 0."""
    return (
        JobRun.objects.count(),
        OrmQ.objects.count(),
        Schedule.objects.filter(name__startswith="run:").count(),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["devkit.demo_job", "items=-5"], "devkit.demo_job: argument items=-5 must be >= 0"),
        (
            ["jobs.prune_history", "older_than_days=0"],
            "jobs.prune_history: argument older_than_days=0 must be >= 1",
        ),
        (["devkit.demo_job", "step_seconds=NaN"], "argument step_seconds='NaN' is not a number"),
        (
            ["devkit.demo_job", "items=" + "9" * 5000],
            "items: a number of 5000 digits is out of range",
        ),
        (["devkit.demo_job", "items=" + "9" * 400], "(400 characters) is out of range"),
        (["exchanges.match_exchange", "exchange_id=999"], "exchange 999 does not exist"),
        (["exchanges.match_exchange", "exchange_id=0"], "exchange_id=0 must be >= 1"),
        (["loyalty.expire_points", "program_id=999"], "no loyalty program with id 999"),
        (["loyalty.expire_points", 'card_ids=[1,"x"]'], "has an item 'x' that is not int"),
        (["exchanges.purge_completed", "exchange_ids=[77]"], "exchange 77 does not exist"),
        (
            ["loyalty.sync_wallet_passes", "since=2026-12-01T00:00"],
            "since='2026-12-01T00:00' must be a date-time with a zone",
        ),
    ],
)
@pytest.mark.parametrize("queue", [False, True])
def test_run_job__bad_value_or_unknown_id__exit_2_one_line_nothing_recorded(args, message, queue):
    with pytest.raises(CommandError) as info:
        call_command("run_job", *args, *(["--queue"] if queue else []))
    assert info.value.returncode == 2
    assert message in str(info.value) and "\n" not in str(info.value)
    assert counts() == (0, 0, 0)
    assert check_recent_failures().ok


def test_run_job__typo_as_a_real_process__exit_2_one_line():
    proc = subprocess.run(
        [sys.executable, "manage.py", "run_job", "devkit.demo_job", "items=-5"],
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "CommandError: devkit.demo_job: argument items=-5 must be >= 0"
    ]


def test_app_command__job_validator_refuses_before_the_run():
    done = Exchange.objects.create(
        name="Done", organizer_email="o@example.com", exchange_at=timezone.now(), state="matched"
    )
    with pytest.raises(CommandError, match="only draft or registration_open") as info:
        call_command("run_job", "exchanges.match_exchange", f"exchange_id={done.pk}")
    assert info.value.returncode == 2 and counts() == (0, 0, 0)


def test_retry__of_a_run_whose_exchange_was_matched_since__refused(admin_client):
    exchange = Exchange.objects.create(
        name="X",
        organizer_email="o@example.com",
        exchange_at=timezone.now() + timedelta(days=3),
        state="matched",
    )
    Participant.objects.create(exchange=exchange, name="A", email="a@example.com")
    failed = JobRun.objects.create(
        job="exchanges.match_exchange", status="failed", kwargs={"exchange_id": exchange.pk}
    )
    url = reverse("admin:jobs_jobrun_changelist")
    response = post_action(admin_client, url, "retry_runs", failed.pk, confirm=True)
    messages = [m.message for m in response.wsgi_request._messages]
    assert JobRun.objects.count() == 1
    assert messages == [
        f"Not retried: run #{failed.pk}: exchange {exchange.pk} is matched; only draft or"
        " registration_open exchanges can be matched."
    ]


def test_run_now__a_job_needing_arguments_is_refused_with_a_message(client):
    staff_client(client, "runner", [("jobs", "run_job"), ("jobs", "view_jobrun")])
    url = reverse("admin:jobs_jobrun_run_now", args=["exchanges.send_due_reminders"])
    assert client.get(url).status_code == 200  # no arguments needed: the confirm page
    url = reverse("admin:jobs_jobrun_run_now", args=["tests.skip_me"])
    assert client.post(url).status_code == 302 and JobRun.objects.count() == 0


def typed(
    *,
    count: Annotated[int, Range(min=1, max=10)] = 1,
    ratio: float = 0.5,
    ids: list[int] | None = None,
    name: str = "",
) -> None:
    """A signature to check against."""


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"count": 5, "ratio": 1, "ids": [1, 2], "name": "x"}, None),
        ({"count": 11}, "argument count=11 must be <= 10"),
        ({"count": True}, "argument count=True is not int"),
        ({"ratio": float("inf")}, "argument ratio=inf is not finite"),
        ({"ids": [1, None]}, "argument ids=[1, None] has an item None that is not int"),
        ({"ids": "1,2"}, "argument ids='1,2' is not list[int] | None"),
        ({"name": "x" * 10_001}, "is longer than 10000 characters"),
        ({"colour": "red"}, "got an unexpected keyword argument 'colour'"),
    ],
)
def test_check_types_and_bounds(kwargs, problem):
    if problem is None:
        check_types_and_bounds("t", typed, kwargs)
        return
    with pytest.raises(BadJobArguments) as info:
        check_types_and_bounds("t", typed, kwargs)
    assert problem in str(info.value)


CHAIN = "bibliotheca.import_purchase_records_by_collection"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("current_day=bad", "current_day='bad' must be a date-time with a zone"),
        ("current_day=2026-02-30", "current_day='2026-02-30' must be a date-time with a zone"),
        ("current_day=2026-02-30T00:00:00+00:00", "must be a date-time with a zone"),
        ("current_day=2026-12-01T00:00:00", "must be a date-time with a zone"),
        ("offset=0", "argument offset=0 must be >= 1"),
        ("until=bad", "argument until='bad' must be a date-time with a zone"),
        ("until=9999-12-31T00:00:00+00:00", "must be from 2014-01-01 to 2027-01-07"),
        ("since=0001-01-01T00:00:00+00:00", "must be from 2014-01-01 to 2027-01-07"),
        (
            "since=2026-12-02T00:00:00+00:00 until=2026-12-01T00:00:00+00:00",
            "since='2026-12-02T00:00:00+00:00' is after until",
        ),
        ("time_budget_seconds=-1", "argument time_budget_seconds=-1 must be >= 0"),
        ("collection_id=987654", "collection 987654 does not exist"),
    ],
)
@pytest.mark.parametrize("queue", [False, True])
def test_chain_arguments__checked_before_a_run_exists(extra, message, queue, time_machine):
    from bibliotheca.models import Collection

    time_machine.move_to("2026-12-07T12:00:00+00:00", tick=False)
    collection = Collection.objects.create(
        name="Main", library_id="lib", account_id="acct", account_key="key",
        base_url="https://partner.example.com",
    )  # fmt: skip
    args = [f"collection_id={collection.pk}", *extra.split()]
    if extra.startswith("collection_id="):
        args = extra.split()
    with pytest.raises(CommandError) as info:
        call_command("run_job", CHAIN, *args, *(["--queue"] if queue else []))
    assert info.value.returncode == 2
    assert message in str(info.value) and "\n" not in str(info.value)
    assert counts() == (0, 0, 0)


def test_renewal_reminders__date_9999_12_31__exit_2_nothing_recorded(time_machine):
    time_machine.move_to("2026-12-07T12:00:00+00:00", tick=False)
    with pytest.raises(CommandError) as info:
        call_command("send_subscription_renewal_reminders", "--date", "9999-12-31", "--dry-run")
    assert info.value.returncode == 2
    assert str(info.value) == (
        "commerce.send_subscription_renewal_reminders: argument date='9999-12-31'"
        " must be from 2000-01-01 to 2027-12-08"
    )
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-12-07", None),
        ("2027-12-08", None),
        ("2027-12-09", "must be from 2000-01-01 to 2027-12-08"),
        ("1999-12-31", "must be from 2000-01-01 to 2027-12-08"),
        ("2026-02-30", "must be a date (YYYY-MM-DD)"),
        ("20261207", "must be a date (YYYY-MM-DD)"),
        ("2026-12-07T00:00:00+00:00", "must be a date (YYYY-MM-DD)"),
    ],
)
def test_iso_date__format_and_bounds(value, problem, time_machine):
    from jobs.arguments import IsoDate

    time_machine.move_to("2026-12-07T12:00:00+00:00", tick=False)

    def job(*, day: Annotated[str, IsoDate()] | None = None) -> None: ...

    if problem is None:
        check_types_and_bounds("x", job, {"day": value})
        return
    with pytest.raises(BadJobArguments) as info:
        check_types_and_bounds("x", job, {"day": value})
    assert str(info.value) == f"x: argument day={value!r} {problem}"
