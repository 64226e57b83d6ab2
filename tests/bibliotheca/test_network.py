"""The chain against a network that takes its time: windows read at once but written in
order, in-place retries (429 Retry-After), the hop's connections, the medium rule, and
bad arguments that must not keep the collection's lock."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from bibliotheca.models import Edition, LicensePool
from bibliotheca.services.purchase_chain import purchase_lock_key
from devkit.bibliotheca_simulator import Fault
from jobs.exceptions import BadJobArguments
from jobs.models import JobRun, Lease
from tests.bibliotheca.conftest import CHAIN, NOW, PAGES, RECORDS, drain, start_chain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]


def day(d: int) -> datetime:
    return datetime(2014, 1, d, tzinfo=UTC)


def _start(d: int) -> str:
    return f"startdate=2014-01-0{d}T00%3A00%3A00"


@pytest.fixture
def checkpoints():
    """Every (pages, finish) the Timestamp takes, in commit order (a trigger records them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TABLE test_checkpoints (id serial, pages int, finish timestamptz);
            CREATE FUNCTION test_log_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO test_checkpoints (pages, finish)
                VALUES ((NEW.progress->>'pages')::int, NEW.finish);
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_log_checkpoint AFTER UPDATE ON bibliotheca_timestamp
            FOR EACH ROW WHEN (NEW.progress->'pages' IS DISTINCT FROM OLD.progress->'pages')
            EXECUTE FUNCTION test_log_checkpoint();
            """
        )

    def read() -> list[tuple[int, datetime]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pages, finish FROM test_checkpoints WHERE pages > 0 ORDER BY id")
            return cursor.fetchall()

    yield read
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_log_checkpoint ON bibliotheca_timestamp;"
            "DROP FUNCTION test_log_checkpoint(); DROP TABLE test_checkpoints"
        )


def test_slow_first_window_and_fast_later_ones__checkpoint_moves_in_page_order(
    collection, simulator, checkpoints
):
    simulator.state.latency_ms = 20
    # Day 1's first page answers last: days 2-4 are read meanwhile, and wait.
    simulator.state.faults.append(
        Fault(kind="timeout", endpoint="marc", match="startdate=2014-01-01", delay_seconds=0.8)
    )
    start_chain(collection, time_budget_seconds=60)

    (run, *_) = drain(include_apply=False)

    assert run.status == "succeeded" and run.result["pages"] == PAGES
    marc = [detail for endpoint, detail in simulator.state.log if endpoint == "marc"]
    day_1_page_2 = marc.index(next(q for q in marc if q.startswith(_start(1)) and "offset=51" in q))
    # Days 2-4 were asked for while day 1's first page was still on its way.
    assert {_start(d) for d in (2, 3, 4)} <= {q.split("&")[0] for q in marc[:day_1_page_2]}
    assert checkpoints() == list(
        enumerate(
            [day(1), day(1), day(2), day(2), day(2), day(3), day(3), day(3), day(4), day(4), NOW],
            start=1,
        )
    )  # after every page, in page order: never backwards, never past a page not written
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS


def test_429_with_retry_after__is_waited_out_in_place(collection, simulator):
    simulator.state.faults.append(Fault(kind="429", endpoint="items", retry_after=1))
    start_chain(collection, time_budget_seconds=60)

    (run, *_) = drain(include_apply=False)

    assert run.status == "succeeded" and run.result["records"] == RECORDS
    assert run.duration_seconds >= 1.0  # the answer's Retry-After, not the short backoff
    assert simulator.state.counts["items"] == PAGES + 1  # one page's batch asked twice
    assert not JobRun.objects.filter(job=CHAIN, status="failed").exists()


def test_429_with_retry_after_300__no_request_before_it_then_the_chain_completes(
    collection, simulator, frozen_clock
):
    from django_q.models import Schedule

    simulator.state.faults.append(
        Fault(kind="429", endpoint="marc", retry_after=300, match=_start(1))
    )
    start_chain(collection, time_budget_seconds=60)

    (hop,) = drain(max_runs=1, include_apply=False)

    then = NOW + timedelta(seconds=300)
    assert hop.status == "succeeded" and hop.result["waiting_until"] == then.isoformat()
    assert hop.result["records"] == 0  # the other windows read meanwhile are dropped
    waiting = JobRun.objects.get(pk=hop.result["next_run_id"])
    assert (waiting.scheduled_for, waiting.kwargs["not_before"]) == (then, then.isoformat())
    assert waiting.kwargs["current_day"] == day(1).isoformat()
    assert Schedule.objects.get(name=f"run:{waiting.pk}").next_run == then
    assert Lease.objects.get(key=purchase_lock_key(collection.pk)).run_id == waiting.pk
    asked = len(simulator.state.log)

    # Delivered early (drain ignores the schedule): it queues itself again, sends nothing.
    (early,) = drain(max_runs=1, include_apply=False)
    assert early.pk == waiting.pk and early.result["waiting_until"] == then.isoformat()
    assert len(simulator.state.log) == asked

    frozen_clock.move_to(then)
    drain(include_apply=False)

    runs = list(JobRun.objects.filter(job=CHAIN).order_by("id"))
    assert runs[-1].result["done"] is True and {r.status for r in runs} == {"succeeded"}
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS


def test_429_asking_for_longer_than_the_limit__stops_the_chain(collection, simulator, settings):
    settings.BIBLIOTHECA_RETRY_AFTER_LIMIT_SECONDS = 600
    simulator.state.faults.append(Fault(kind="429", endpoint="marc", retry_after=3600))
    first = start_chain(collection, time_budget_seconds=0)

    (failed,) = drain(max_runs=1, include_apply=False)

    assert failed.pk == first.pk and failed.status == "failed"
    assert failed.result == {"permanent": True}
    assert failed.error.startswith("RetryAfterTooLong: ") and "HTTP 429" in failed.error
    assert "asks to wait 3600 s, more than BIBLIOTHECA_RETRY_AFTER_LIMIT_SECONDS (600 s)" in (
        failed.error
    )
    assert not JobRun.objects.filter(parent=failed).exists()
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()


def test_a_hop__uses_only_its_own_connection_and_the_heartbeats(collection, simulator):
    simulator.state.latency_ms = 5
    opened: list[str] = []

    def record(sender, **kwargs) -> None:
        opened.append(threading.current_thread().name)

    connection_created.connect(record)
    try:
        start_chain(collection, time_budget_seconds=60)
        (run, *_) = drain(include_apply=False)
    finally:
        connection_created.disconnect(record)

    assert run.status == "succeeded" and run.result["pages"] == PAGES
    # The hop's thread is the test's (its connection was open already); at most the
    # runner's heartbeat opens another: the I/O threads never touch the database.
    assert set(opened) <= {f"heartbeat-{run.pk}"}


def test_skip_media__records_of_those_media_get_no_pool_and_no_edition(
    collection, simulator, settings
):
    settings.BIBLIOTHECA_SKIP_MEDIA = ["audiobook"]
    catalogue = simulator.state.catalogue
    start, end = day(1), NOW
    audio = {
        r.item_id
        for r in catalogue.records_between(start, end)
        if catalogue.item(r.item_id)["BookFormat"] == "MP3"
    }
    start_chain(collection, time_budget_seconds=60)

    (run, *_) = drain()

    assert 0 < len(audio) < RECORDS
    assert run.result["skipped"] == len(audio)
    pools = LicensePool.objects.filter(collection=collection)
    assert pools.count() == RECORDS - len(audio)
    assert not pools.filter(identifier__value__in=audio).exists()
    assert Edition.objects.count() == RECORDS - len(audio)
    assert not Edition.objects.filter(medium="audiobook").exists()


@pytest.mark.parametrize(
    "bad", [{"current_day": "notaday"}, {"until": "2014-01-02"}, {"offset": 0}]
)
def test_bad_argument__refused_before_a_run_exists_and_no_lock_taken(collection, simulator, bad):
    """Checked by the job's annotations wherever it is queued: no run, no lock, no call."""
    with pytest.raises(BadJobArguments, match=f"argument {next(iter(bad))}="):
        start_chain(collection, **bad)

    assert not JobRun.objects.exists()
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()
    assert simulator.state.counts == {}
    again = start_chain(collection, time_budget_seconds=60)  # the next import is not skipped
    drain(include_apply=False)
    again.refresh_from_db()
    assert again.status == "succeeded" and again.result["done"] is True


def test_first_hop_failing_for_good__releases_the_lock(collection, simulator):
    simulator.state.faults.append(Fault(kind="http_403", endpoint="marc"))
    first = start_chain(collection, time_budget_seconds=0)

    drain(max_runs=1, include_apply=False)

    first.refresh_from_db()
    assert first.status == "failed" and first.result == {"permanent": True}
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()
