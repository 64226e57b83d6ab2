"""One argument path: every entry point refuses a bad argument before a run exists.

`jobs.arguments.check_job_arguments` (annotations, then the job's `validate`) runs in
jobs.runner for run_job, the app commands, admin actions, Run now, Retry and chain
hops, and in the queue guard for a scheduled slot. Each test asserts the refusal names
the argument and that no run of the job exists.
"""

from datetime import timedelta
from typing import Annotated, Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bibliotheca.models import Collection
from exchanges.models import Exchange, Participant
from jobs.arguments import IsoDate, Range, from_text
from jobs.exceptions import BadJobArguments
from jobs.models import JobRun
from jobs.queue.schedule_overrides import ScheduleOverrideError, schedule_overrides
from jobs.registry import job
from jobs.runner import enqueue_job
from tests.admin_helpers import post_action, staff_client

pytestmark = pytest.mark.django_db

CHAIN = "bibliotheca.import_purchase_records_by_collection"


@pytest.fixture
def collection() -> Collection:
    return Collection.objects.create(
        name="Main", library_id="lib", account_id="acct", account_key="key",
        base_url="https://partner.example.com",
    )  # fmt: skip


@pytest.fixture
def first_hop(collection) -> JobRun:
    return JobRun.objects.create(
        job=CHAIN, status="running", trigger="command", kwargs={"collection_id": collection.pk}
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"since": "2026-12-02T00:00:00+00:00", "until": "2026-12-01T00:00:00+00:00"},
            "since='2026-12-02T00:00:00+00:00' is after until",
        ),
        ({"current_day": "2026-12-01"}, "argument current_day='2026-12-01' must be a date-time"),
        ({"offset": 0}, "argument offset=0 must be >= 1"),
        ({"collection_id": 987654}, "collection 987654 does not exist"),
    ],
)
def test_chain_hop__bad_arguments_refused_before_the_hop_exists(
    collection, first_hop, kwargs, message, time_machine
):
    """What a hop does to queue the next one (`_queue_next`), with arguments that no hop
    may run with: refused there, and the hop that asked fails saying why."""
    time_machine.move_to("2026-12-07T12:00:00+00:00", tick=False)
    hop = {"collection_id": collection.pk, "current_day": "2026-12-01T00:00:00+00:00", **kwargs}

    with pytest.raises(BadJobArguments) as info:
        enqueue_job(CHAIN, kwargs=hop, trigger=JobRun.Trigger.CHAIN, parent=first_hop)

    assert message in str(info.value) and "\n" not in str(info.value)
    assert list(JobRun.objects.values_list("pk", flat=True)) == [first_hop.pk]


def test_chain__a_new_chain_of_a_disabled_collection_is_refused_a_running_one_goes_on(
    collection, first_hop
):
    """A disabled collection starts no chain; the next hop of a running chain is queued
    and stops the chain itself (recorded skipped, its lease freed)."""
    Collection.objects.filter(pk=collection.pk).update(enabled=False)

    with pytest.raises(BadJobArguments, match="collection 'Main' is disabled"):
        enqueue_job(CHAIN, kwargs={"collection_id": collection.pk}, trigger="admin")
    hop = enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, "current_day": "2026-12-01T00:00:00+00:00"},
        trigger=JobRun.Trigger.CHAIN,
        parent=first_hop,
    )

    assert JobRun.objects.filter(job=CHAIN).count() == 2 and hop.parent_id == first_hop.pk


def test_import_command__a_disabled_collection__exit_2_nothing_queued(collection):
    Collection.objects.filter(pk=collection.pk).update(enabled=False)
    with pytest.raises(CommandError) as info:
        call_command("import_bibliotheca_purchases", "--collection", "Main")
    assert info.value.returncode == 2
    assert str(info.value) == f"{CHAIN}: collection 'Main' is disabled"
    assert not JobRun.objects.exists()


def test_automatic_retry__types_checked_validate_not(collection):
    """A retry repeats a run whose arguments passed: what changed since is the job's own
    error to record, not a refusal that would lose the retry."""
    Collection.objects.filter(pk=collection.pk).delete()
    retry = enqueue_job(
        CHAIN, kwargs={"collection_id": collection.pk}, trigger=JobRun.Trigger.RETRY
    )
    assert retry.status == "queued"
    with pytest.raises(BadJobArguments, match="argument offset=0 must be >= 1"):
        enqueue_job(
            CHAIN,
            kwargs={"collection_id": collection.pk, "offset": 0},
            trigger=JobRun.Trigger.RETRY,
        )


def exchange(name: str, state: str = "draft") -> Exchange:
    made = Exchange.objects.create(
        name=name,
        organizer_email="o@example.com",
        exchange_at=timezone.now() + timedelta(days=30),
        state=state,
    )
    for person in ("A", "B", "C"):
        Participant.objects.create(exchange=made, name=person, email=f"{person}@example.com")
    return made


def test_admin_action__refused_argument__nothing_queued_and_the_reason_shown(client):
    """Another user matches the second exchange while the action queues the first one's
    draw (a trigger plays them): the job's check refuses the second, and the action
    queues nothing at all."""
    first, second = exchange("First"), exchange("Second")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION test_match_second() RETURNS trigger AS $$
            BEGIN
                UPDATE exchanges_exchange SET state = 'matched' WHERE id = {second.pk};
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_match_second AFTER INSERT ON jobs_jobrun
                FOR EACH ROW EXECUTE FUNCTION test_match_second();
            """  # noqa: S608
        )
    perms = [("exchanges", "view_exchange"), ("exchanges", "change_exchange")]
    staff_client(client, "rita", [*perms, ("jobs", "run_job"), ("jobs", "view_jobrun")])
    url = reverse("admin:exchanges_exchange_changelist")

    response = post_action(client, url, "match", first.pk, second.pk, confirm=True)

    messages = [m.message for m in response.wsgi_request._messages]
    assert response.status_code == 302 and not JobRun.objects.exists()
    assert messages == [
        f"Nothing queued: exchange {second.pk} is matched; only draft or registration_open"
        " exchanges can be matched"
    ]
    assert Exchange.objects.get(pk=second.pk).state == "draft"  # rolled back with the action


def test_run_now__a_job_needing_arguments__a_message_and_no_run(client):
    perms = [("jobs", "run_job"), ("jobs", "view_jobrun"), ("exchanges", "change_exchange")]
    staff_client(client, "runner", perms)
    url = reverse("admin:jobs_jobrun_run_now", args=["exchanges.match_exchange"])

    response = client.post(url)

    messages = [m.message for m in response.wsgi_request._messages]
    assert response.status_code == 302 and not JobRun.objects.exists()
    assert messages == [
        "exchanges.match_exchange: missing a required argument: 'exchange_id' (jobs that need"
        " arguments run from their own admin pages or `manage.py run_job`)"
    ]


def test_schedule_override__a_job_needing_arguments_cannot_be_scheduled(settings):
    settings.JOBS_SCHEDULES = {"exchanges.match_exchange": "0 4 * * *"}
    with pytest.raises(ScheduleOverrideError) as info:
        schedule_overrides()
    assert str(info.value) == (
        "JOBS_SCHEDULES: cannot schedule exchanges.match_exchange:"
        " missing a required argument: 'exchange_id'"
    )


def test_registry__a_cron_job_needing_arguments_is_refused_at_import():
    with pytest.raises(ValueError, match=r"cannot need arguments \(target\)"):

        @job("tests.cron_with_arguments", cron="0 4 * * *")
        def needs(*, target: int) -> dict[str, Any]:
            return {}


def typed(
    *,
    count: Annotated[int, Range(min=1)] = 1,
    ratio: float | None = None,
    flag: bool = False,
    ids: list[int] | None = None,
    day: Annotated[str, IsoDate()] | None = None,
) -> None:
    """A signature to read text against."""


@pytest.mark.parametrize(
    ("texts", "read"),
    [
        (
            {"count": "12", "ratio": "2.5", "flag": "true"},
            {"count": 12, "ratio": 2.5, "flag": True},
        ),
        ({"ratio": "-1", "ids": ["3", "4"]}, {"ratio": -1, "ids": [3, 4]}),
        ({"ids": "[1, 2]", "ratio": "null"}, {"ids": [1, 2], "ratio": None}),
        ({"day": "2026-12-01", "count": 5}, {"day": "2026-12-01", "count": 5}),
        # Left as typed, for the check to refuse by name: not what an operator means.
        ({"count": "٣", "ratio": "nan", "flag": "1"}, {"count": "٣", "ratio": "nan", "flag": "1"}),
        (
            {"count": " 3", "ids": ["3_0"], "other": "x"},
            {"count": " 3", "ids": ["3_0"], "other": "x"},
        ),
    ],
)
def test_from_text__reads_the_annotated_types_leaves_the_rest(texts, read):
    assert from_text("t", typed, texts) == read
