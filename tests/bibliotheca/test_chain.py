"""The purchase-record chain through the runner (in process), the simulator and PostgreSQL."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Edition, LicensePool, Timestamp
from bibliotheca.services.purchase_chain import purchase_lock_key
from devkit.bibliotheca_simulator import Fault
from jobs.models import JobRun, Lease
from jobs.runner import enqueue_job, run_job_now
from jobs.runs import locks
from tests.bibliotheca.conftest import NOW, drain, staged_identifiers
from tests.live_run import lease_holder

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = "bibliotheca.import_purchase_records_by_collection"
APPLY = "bibliotheca.apply_bibliographic"
#: Days 1-3 have 120 records (pages 50, 50, 20); day 4 until NOW 12:00 has 60 (50, 10).
PAGES, RECORDS = 11, 420


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def start_chain(collection, **kwargs) -> JobRun:
    return enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, "time_budget_seconds": 0, **kwargs},
        trigger="command",
        triggered_by="test",
    )


def chain_runs() -> list[JobRun]:
    return list(JobRun.objects.filter(job=CHAIN).order_by("id"))


def timestamp(collection) -> Timestamp:
    return Timestamp.objects.get(service=PURCHASE_RECORD_SERVICE, collection=collection)


def marc_queries(simulator) -> list[str]:
    return [detail for endpoint, detail in simulator.state.log if endpoint == "marc"]


def test_first_run__backfills_from_2014_one_page_per_hop_with_budget_zero(collection, simulator):
    start_chain(collection)
    drain(include_apply=False)

    runs = chain_runs()
    assert [r.status for r in runs] == ["succeeded"] * PAGES
    assert [r.trigger for r in runs] == ["command"] + ["chain"] * (PAGES - 1)
    assert all(r.parent_id == p.pk for p, r in zip(runs, runs[1:], strict=False))
    assert runs[-1].result["done"] is True and "next_run_id" not in runs[-1].result
    assert [(q.split("&")[0], q.split("&")[2]) for q in marc_queries(simulator)] == [
        ("startdate=2014-01-01T00%3A00%3A00", "offset=1"),
        ("startdate=2014-01-01T00%3A00%3A00", "offset=51"),
        ("startdate=2014-01-01T00%3A00%3A00", "offset=101"),
        ("startdate=2014-01-02T00%3A00%3A00", "offset=1"),
        ("startdate=2014-01-02T00%3A00%3A00", "offset=51"),
        ("startdate=2014-01-02T00%3A00%3A00", "offset=101"),
        ("startdate=2014-01-03T00%3A00%3A00", "offset=1"),
        ("startdate=2014-01-03T00%3A00%3A00", "offset=51"),
        ("startdate=2014-01-03T00%3A00%3A00", "offset=101"),
        ("startdate=2014-01-04T00%3A00%3A00", "offset=1"),
        ("startdate=2014-01-04T00%3A00%3A00", "offset=51"),
    ]
    assert "enddate=2014-01-04T12%3A00%3A00" in marc_queries(simulator)[-1]
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS
    ts = timestamp(collection)
    assert ts.finish == NOW and ts.counter == RECORDS and ts.exception == ""
    assert ts.progress["pages"] == PAGES and ts.progress["new_pools"] == RECORDS
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()


def test_one_hop_with_budget__processes_several_pages(collection, simulator):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    (run,) = chain_runs()
    assert run.result["pages"] == PAGES and run.result["records"] == RECORDS
    assert run.result["done"] is True


def test_checkpoint__moves_after_every_page_and_never_backwards(collection, simulator):
    start_chain(collection)
    finishes = []
    while drain(max_runs=1, include_apply=False):
        finishes.append(timestamp(collection).finish)

    day = lambda d, h=0: datetime(2014, 1, d, h, tzinfo=UTC)  # noqa: E731
    assert finishes == [
        day(1), day(1), day(2),
        day(2), day(2), day(3),
        day(3), day(3), day(4),
        day(4), NOW,
    ]  # fmt: skip


def test_later_run__resumes_an_hour_before_the_checkpoint_and_counts_the_overlap(
    collection, simulator, frozen_clock
):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    simulator.state.log.clear()

    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    # Up to date: only the hour before the checkpoint is read again (5 records there).
    again = chain_runs()[-1].result
    assert (again["pages"], again["records"], again["new_pools"]) == (1, 5, 0)
    assert (again["overlap_pages"], again["overlap_records"], again["done"]) == (1, 5, True)
    assert marc_queries(simulator) == [
        "startdate=2014-01-04T11%3A00%3A00&enddate=2014-01-04T12%3A00%3A00&offset=1&limit=50"
    ]

    frozen_clock.move_to(NOW + timedelta(days=1))
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    assert sorted(q.split("&")[:2] for q in marc_queries(simulator)[1:]) == [
        ["startdate=2014-01-04T11%3A00%3A00", "enddate=2014-01-04T12%3A00%3A00"],
        ["startdate=2014-01-04T12%3A00%3A00", "enddate=2014-01-05T12%3A00%3A00"],
        ["startdate=2014-01-04T12%3A00%3A00", "enddate=2014-01-05T12%3A00%3A00"],
        ["startdate=2014-01-04T12%3A00%3A00", "enddate=2014-01-05T12%3A00%3A00"],
    ]  # the hour before the checkpoint, then the day (pages of 50, 50, 20)
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS + 120
    assert timestamp(collection).finish == NOW + timedelta(days=1)


def test_force_reimport__starts_at_2014_and_finds_existing_pools(collection, simulator):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    simulator.state.log.clear()

    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain(include_apply=False)

    result = chain_runs()[-1].result
    assert result["from"] == "2014-01-01T00:00:00+00:00"
    assert (
        "startdate=2014-01-01T00%3A00%3A00&enddate=2014-01-02T00%3A00%3A00&offset=1&limit=50"
        in (marc_queries(simulator))
    )
    assert (result["records"], result["new_pools"], result["items_requests"]) == (RECORDS, 0, 0)
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS


def test_hop_killed_mid_chain__next_run_resumes_without_losing_or_duplicating_pools(
    collection, simulator
):
    start_chain(collection)
    drain(max_runs=4, include_apply=False)  # day 1 done, day 2 page 1 committed
    # The worker dies: the queued hop is lost and the lease is left to expire.
    JobRun.objects.filter(job=CHAIN, status="queued").delete()
    Lease.objects.filter(key=purchase_lock_key(collection.pk)).update(
        expires_at=NOW - timedelta(seconds=1)
    )
    assert timestamp(collection).finish == datetime(2014, 1, 2, tzinfo=UTC)

    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    resumed = chain_runs()[-1].result
    # It took over the dead chain's lease and counts: the hour before the checkpoint
    # and day 2's first page were read again, written, and not counted twice.
    assert resumed["took_over"] is True and resumed["from"] == "2014-01-01T23:00:00+00:00"
    assert (resumed["reread_pages"], resumed["records"]) == (2, RECORDS - 120 - 50)
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS
    assert LicensePool.objects.values("identifier").distinct().count() == RECORDS
    ts = timestamp(collection)
    assert ts.finish == NOW
    assert (ts.progress["pages"], ts.progress["records"], ts.counter) == (PAGES, RECORDS, RECORDS)


@pytest.mark.parametrize("catalogue_bad", [{"no_001_every": 7, "two_001_every": 11}])
def test_records_without_exactly_one_001__are_skipped_and_counted(
    catalogue, catalogue_bad, collection, simulator
):
    catalogue.no_001_every, catalogue.two_001_every = 7, 11
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    positions = range(1, RECORDS + 1)
    no_001 = sum(1 for p in positions if p % 7 == 0)
    two_001 = sum(1 for p in positions if p % 7 and p % 11 == 0)
    (run,) = chain_runs()
    assert run.status == "succeeded"
    assert run.result["skipped"] == no_001 + two_001
    assert LicensePool.objects.count() == RECORDS - no_001 - two_001
    assert timestamp(collection).progress["skipped"] == no_001 + two_001


def test_records_whose_001_is_not_an_item_id__are_skipped_and_counted_not_fatal(
    catalogue, collection, simulator
):
    """An 001 that cannot be an item id (a space, a comma, a slash, non-ASCII, longer than
    an identifier) would be sent in the items request's path: the partner refuses the
    request (here: its signature), the chain stops terminally on that page, and every
    later chain stops there again: the collection never imports past one odd record."""
    odd = {
        "bib201401020005": "bib20140102 0005",
        "bib201401020006": "bib201401020006,bib201401020007",
        "bib201401020008": "bib/201401020008",
        "bib201401020009": "bibé01",
        "bib201401020010": "b" * 300,
    }
    catalogue.odd_001.update(odd)
    catalogue.odd_001["bib201401020011"] = "  bib201401020011 "  # spaces around: the id
    start_chain(collection, time_budget_seconds=60)

    drain(include_apply=False)

    (run,) = chain_runs()
    assert run.status == "succeeded" and run.result["done"] is True
    assert run.result["skipped"] == len(odd)
    assert LicensePool.objects.count() == RECORDS - len(odd)
    assert timestamp(collection).finish == NOW


def test_metadata__is_looked_up_in_one_batch_per_page_for_new_pools_only(collection, simulator):
    start_chain(collection)
    drain(include_apply=False)

    items_calls = [d for e, d in simulator.state.log if e == "items"]
    assert len(items_calls) == PAGES
    assert (
        sorted(len(c.rsplit("/", 1)[1].split(",")) for c in items_calls)
        == [10, 20, 20, 20] + [50] * 7
    )
    applies = JobRun.objects.filter(job=APPLY)
    assert applies.count() == PAGES
    assert all(a.kwargs["collection_id"] == collection.pk for a in applies)
    assert sum(len(staged_identifiers(a)) for a in applies) == RECORDS


def test_apply__writes_editions_once_and_second_import_of_same_data_queues_no_apply(
    catalogue, collection, simulator
):
    start_chain(collection, time_budget_seconds=60)
    drain()
    assert Edition.objects.count() == RECORDS
    edition = Edition.objects.select_related("identifier").first()
    assert edition.title == catalogue.item(edition.identifier.value)["Title"]

    first_applies = JobRun.objects.filter(job=APPLY).count()
    # One apply job per committed page group (a page per commit by default).
    assert 1 <= first_applies <= PAGES
    LicensePool.objects.update(metadata_checked_at=None)  # every pool due again
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain()
    second = chain_runs()[-1].result
    assert second["items_requests"] == PAGES and second["applies_queued"] == 0
    assert JobRun.objects.filter(job=APPLY).count() == first_applies  # none queued now

    catalogue.metadata_version = 2
    LicensePool.objects.update(metadata_checked_at=None)
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain()
    assert chain_runs()[-1].result["applies_queued"] == RECORDS
    edition.refresh_from_db()
    assert edition.title.endswith(" v2")


def test_apply_delivered_twice__writes_once(collection, simulator):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    apply_run = JobRun.objects.filter(job=APPLY).order_by("id").first()
    queued = len(staged_identifiers(apply_run))
    again = enqueue_job(APPLY, kwargs=apply_run.kwargs, trigger="command")
    drain()

    assert queued > 0
    assert JobRun.objects.get(pk=apply_run.pk).result["created"] == queued
    # The first run took its batch: the second has nothing left to write.
    assert JobRun.objects.get(pk=again.pk).result == {
        "collection_id": collection.pk,
        "batch": apply_run.kwargs["batch"],
        "created": 0,
        "updated": 0,
        "unchanged": 0,
    }
    assert Edition.objects.count() == RECORDS


@pytest.mark.parametrize("kind", ["5xx", "timeout"])
def test_transient_error__is_retried_with_same_kwargs_and_lock_kept(
    kind, collection, simulator, settings
):
    settings.BIBLIOTHECA_REQUEST_TIMEOUT_SECONDS = 0.3
    start_chain(collection)
    drain(max_runs=2, include_apply=False)
    # Every try of the request fails: the hop fails into the chain's retry.
    simulator.state.faults.append(Fault(kind=kind, endpoint="marc", delay_seconds=1, times=3))

    (failed,) = drain(max_runs=1, include_apply=False)

    assert failed.status == "failed"
    assert failed.error.startswith(
        "BadResponse: " if kind == "5xx" else "RequestTimedOut: "
    ) and "'Main library', window 2014-01-01T00:00:00..2014-01-02T00:00:00 offset 101" in (
        failed.error
    )
    retry = JobRun.objects.get(parent=failed)
    assert (retry.trigger, retry.attempt, retry.kwargs) == ("retry", 2, failed.kwargs)
    assert 0 <= failed.result["retry_in_seconds"] <= 60
    # The lock waits with the retry: no other chain may start meanwhile.
    assert locks.lease_row(purchase_lock_key(collection.pk)).run_id == retry.pk

    drain(include_apply=False)
    assert chain_runs()[-1].result["done"] is True
    assert LicensePool.objects.count() == RECORDS and timestamp(collection).finish == NOW


def test_transient_error_on_first_hop__retry_holds_the_lock_and_reads_the_same_range(
    collection, simulator
):
    simulator.state.faults.append(Fault(kind="5xx", endpoint="items", times=3))
    first = start_chain(collection)

    drain(max_runs=1, include_apply=False)

    first.refresh_from_db()
    retry = JobRun.objects.get(parent=first)
    assert first.status == "failed" and retry.kwargs == first.kwargs
    assert retry.kwargs["current_day"] == "2014-01-01T00:00:00+00:00"
    assert locks.lease_row(purchase_lock_key(collection.pk)).run_id == retry.pk
    # A manual chain meanwhile is skipped, naming the queued retry.
    skipped = run_job_now(CHAIN, kwargs={"collection_id": collection.pk})
    assert skipped.status == "skipped"
    assert f"is held by the retry run #{retry.pk} ({CHAIN}, queued)" in skipped.result["reason"]
    assert LicensePool.objects.count() == 0  # the page's transaction rolled back


def test_terminal_error__stops_the_chain_with_checkpoint_intact_and_lock_released(
    collection, simulator
):
    start_chain(collection)
    drain(max_runs=4, include_apply=False)
    checkpoint = timestamp(collection).finish
    simulator.state.faults.append(Fault(kind="error_xml", endpoint="marc"))

    (failed,) = drain(max_runs=1, include_apply=False)

    assert failed.status == "failed" and failed.result == {"permanent": True}
    assert failed.error == (
        "RemoteIntegrationError: Bibliotheca collection 'Main library', window "
        "2014-01-02T00:00:00..2014-01-03T00:00:00 offset 51: error document: "
        "Gen-001: injected error document"
    )
    assert not JobRun.objects.filter(parent=failed).exists()
    assert not JobRun.objects.filter(job=CHAIN, status="queued").exists()
    ts = timestamp(collection)
    assert ts.finish == checkpoint and ts.exception == failed.error
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            '<?xml version="1.0" encoding="utf-8"?>'
            "<Error><Code>Gen-001</Code><Message>Library not ready</Message></Error>",
            "error document: Gen-001: Library not ready",
        ),
        (
            "<html><body><h1>Down for maintenance</h1></body></html>",
            "unreadable MARCXML (ValueError: expected a MARCXML <collection>, got <html>)",
        ),
    ],
    ids=["error-document-with-xml-declaration", "maintenance-page"],
)
def test_200_with_a_document_that_is_not_marc__stops_the_chain_instead_of_skipping_the_day(
    collection, simulator, body, error
):
    """The partner (or a proxy before it) answering 200 with something that is not a
    MARC collection has not said the day is empty: read as "no records", the
    checkpoint moved past the day and its purchases were never imported."""
    simulator.state.faults.append(
        Fault(kind="error_xml", endpoint="marc", match="startdate=2014-01-02", body=body)
    )
    start_chain(collection)

    runs = drain(include_apply=False)

    assert runs[-1].status == "failed" and runs[-1].error.endswith(error)
    assert "window 2014-01-02T00:00:00..2014-01-03T00:00:00 offset 1" in runs[-1].error
    assert timestamp(collection).finish == datetime(2014, 1, 2, tzinfo=UTC)
    assert LicensePool.objects.count() == 120  # day 1 only; nothing after the bad day


def test_malformed_xml__is_terminal(collection, simulator):
    simulator.state.faults.append(Fault(kind="malformed_xml", endpoint="marc"))
    start_chain(collection)

    (failed,) = drain(max_runs=1, include_apply=False)

    assert failed.status == "failed" and "unreadable MARCXML" in failed.error
    assert not JobRun.objects.filter(parent=failed).exists()


def test_lock_held_by_another_owner__first_hop_is_recorded_skipped(collection, simulator):
    key = purchase_lock_key(collection.pk)
    locks.acquire_lease(key=key, owner="other-chain", lease_seconds=600)
    start_chain(collection)

    (run,) = drain()

    assert run.status == JobRun.Status.SKIPPED
    assert run.result["reason"] == (
        f"lock {key} is held by other-chain; the lease frees at 2014-01-04T12:10:00+00:00"
        " (in 600 s)"
    )
    assert run.result["lock_held"]["owner"] == "other-chain"
    assert not JobRun.objects.filter(parent=run).exists()  # never retried
    assert simulator.state.counts == {} and lease_holder(key)[0] == "other-chain"
    assert not Timestamp.objects.filter(collection=collection).exists()  # nothing reset


def test_purchase_lock__is_distinct_from_the_event_import_lock(collection, simulator):
    locks.acquire_lease(key=f"bibliotheca:events:{collection.pk}", owner="ev", lease_seconds=60)
    start_chain(collection, time_budget_seconds=60)

    (run, *_) = drain()

    assert run.result["done"] is True and run.result["records"] == RECORDS


def test_lease_lost_mid_chain__warns_flags_retakes_and_continues(collection, simulator, caplog):
    key = purchase_lock_key(collection.pk)
    start_chain(collection)
    drain(max_runs=1, include_apply=False)
    Lease.objects.filter(key=key).delete()  # expired and gone: nobody else holds it

    drain(include_apply=False)

    second = chain_runs()[1]
    assert second.result["lease_lost"] is True and second.needs_attention
    assert "lost between hops (retaken; continuing)" in caplog.text
    assert chain_runs()[-1].result["done"] is True
    assert LicensePool.objects.count() == RECORDS


def test_lease_taken_by_another_chain__this_chain_stops_skipped(collection, simulator, caplog):
    key = purchase_lock_key(collection.pk)
    start_chain(collection)
    drain(max_runs=1, include_apply=False)
    # Between hops someone else holds it (here an operator's hold of ten minutes).
    Lease.objects.filter(key=key).update(
        owner="intruder", run_id=None, expires_at=NOW + timedelta(minutes=10)
    )

    drain(include_apply=False)

    runs = chain_runs()
    assert len(runs) == 2
    assert runs[1].status == "skipped" and runs[1].needs_attention
    assert runs[1].result["reason"].startswith(f"lock {key} is held by intruder; the lease frees")
    assert f"lock {key} was taken while this run waited" in runs[1].attention_reason
    assert Lease.objects.get(key=key).owner == "intruder"  # not ours to release


def test_lease_taken_over_during_a_long_hop__hop_stops_and_writes_no_more_pages(
    collection, simulator, settings, monkeypatch
):
    import threading

    from django.db import connections

    from bibliotheca.services import purchase_chain

    monkeypatch.setattr(purchase_chain, "EXTEND_EVERY_SECONDS", 0.0)  # check after each page
    settings.BIBLIOTHECA_REQUEST_TIMEOUT_SECONDS = 10
    # Every items request answers after 0.2 s: the hop reads pages ahead of the writer,
    # and another chain takes the lease while pages wait to be written.
    simulator.state.faults.append(
        Fault(kind="timeout", endpoint="items", times=30, delay_seconds=0.2)
    )
    key = purchase_lock_key(collection.pk)
    # Ten days of 120 records: 30 pages, more than the hop reads ahead of its writer.
    start_chain(collection, time_budget_seconds=600, until="2014-01-11T00:00:00+00:00")

    taken_at_pages: list[int] = []

    def take_lease() -> None:
        """Take the lease from the hop once it has written a page and is still running,
        so the two sides overlap whatever the machine's speed."""
        running = JobRun.objects.filter(status=JobRun.Status.RUNNING).values("pk")
        try:
            for _ in range(1500):
                progress = stamps.values_list("progress", flat=True).first() or {}
                pages = progress.get("pages", 0)
                if pages >= 1 and Lease.objects.filter(key=key, run_id__in=running).update(
                    owner="intruder", run_id=None
                ):
                    taken_at_pages.append(pages)
                    return
                if not JobRun.objects.filter(job=CHAIN, status__in=["queued", "running"]).exists():
                    return  # the hop ended first: the assertion below says so
                time.sleep(0.02)
        finally:
            connections.close_all()  # this thread's

    stamps = Timestamp.objects.filter(service=PURCHASE_RECORD_SERVICE, collection=collection)
    intruder = threading.Thread(target=take_lease)
    intruder.start()
    try:
        (run,) = drain(include_apply=False)
    finally:
        intruder.join()

    assert taken_at_pages, "the intruder never found the hop running with a page written"
    assert run.status == "skipped"
    assert run.result["reason"].endswith("was taken over mid-hop; this chain stops")
    assert Lease.objects.get(key=key).owner == "intruder"  # not ours to release
    ts = timestamp(collection)
    # The pages read ahead and still waiting to be written were left alone.
    assert 1 <= ts.progress["pages"] < len(marc_queries(simulator)) - 3
    assert LicensePool.objects.filter(collection=collection).count() == ts.counter


def test_progress__every_hop_reports_days_of_the_range_and_the_chains_counts(collection, simulator):
    start_chain(collection)
    drain(include_apply=False)

    runs = chain_runs()
    progress = [r.progress for r in runs]
    # The range is 2014-01-01 .. NOW (3.5 days): 4 day windows, the last one partial.
    assert {(p["unit"], p["total"]) for p in progress} == {("days", 4)}
    assert [p["done"] for p in progress] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4]
    assert [p["pages"] for p in progress] == list(range(1, PAGES + 1))
    assert progress[-1]["records"] == RECORDS and progress[-1]["skipped"] == 0
    assert all(p["hop_pages"] == 1 for p in progress)
    first = runs[0]
    assert first.kwargs["since"] == "2014-01-01T00:00:00+00:00"
    assert first.kwargs["until"] == NOW.isoformat()
    assert all(r.kwargs["since"] == first.kwargs["since"] for r in runs)


def test_transient_error_on_first_hop_of_force_reimport__retry_restarts_at_2014(
    collection, simulator
):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    simulator.state.faults.append(
        Fault(kind="5xx", endpoint="marc", match="startdate=2014-01-01T00%3A00%3A00", times=3)
    )

    first = start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain(include_apply=False)

    first.refresh_from_db()
    retry = JobRun.objects.get(parent=first)
    assert first.status == "failed" and "2014-01-01T00:00:00..2014-01-02" in first.error
    assert retry.status == "succeeded"
    assert retry.kwargs["current_day"] == "2014-01-01T00:00:00+00:00"
    assert retry.result["from"] == "2014-01-01T00:00:00+00:00"  # not the old checkpoint
    assert retry.result["records"] == RECORDS and timestamp(collection).finish == NOW


def test_error_on_a_page_read_ahead__is_raised_after_the_pages_before_it_are_written(
    collection, simulator
):
    # One hop reads several windows at once; the 5th MARC page (day 2, offset 51)
    # answers an error document, maybe before the pages before it.
    simulator.state.faults.append(
        Fault(kind="error_xml", endpoint="marc", match="2014-01-03T00%3A00%3A00&offset=51")
    )
    start_chain(collection, time_budget_seconds=60)

    (failed,) = drain(include_apply=False)

    assert failed.status == "failed" and "offset 51" in failed.error
    ts = timestamp(collection)
    assert ts.progress["pages"] == 4  # the 4 pages before it, each with its checkpoint
    assert ts.finish == datetime(2014, 1, 2, tzinfo=UTC)  # day 1 done, day 2 page 1
    assert LicensePool.objects.filter(collection=collection).count() == 120 + 50
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()


def test_until_typed_in_the_future__checkpoint_stops_at_now_and_no_later_purchase_is_lost(
    collection, simulator, frozen_clock, catalogue
):
    """`run_job ... until=<a day ahead>` (the argument check allows a month ahead): the
    windows after now are empty when read; the checkpoint must not move past them, or the
    purchases made in them are never read."""
    start_chain(collection, time_budget_seconds=60, until=(NOW + timedelta(days=2)).isoformat())
    drain(include_apply=False)
    assert timestamp(collection).finish == NOW

    frozen_clock.move_to(NOW + timedelta(days=3))  # the next nightly chain
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    purchased = catalogue.records_between(datetime(2014, 1, 1, tzinfo=UTC), NOW + timedelta(days=3))
    assert LicensePool.objects.filter(collection=collection).count() == len(purchased)


def test_hop_run_by_hand_in_a_local_zone__reads_that_moment_and_a_stop_loses_nothing(
    collection, simulator, catalogue
):
    """`run_job ... current_day=2014-01-01T16:00:00-08:00` (an operator in Los Angeles):
    the partner's window parameters are UTC. Read as 16:00 UTC, the chain would read 8 hours
    behind the checkpoint it writes, and a chain stopped mid-way would resume past purchases
    it never read."""
    typed = datetime(2014, 1, 2, tzinfo=UTC)  # 2014-01-01T16:00:00-08:00
    for second_day in ("2014-01-02T16", "2014-01-03T00"):  # as sent before the fix, after
        simulator.state.faults.append(
            Fault(kind="error_xml", endpoint="marc", match=f"startdate={second_day}")
        )
    start_chain(collection, time_budget_seconds=60, current_day="2014-01-01T16:00:00-08:00")
    (stopped,) = drain(include_apply=False)
    assert stopped.status == "failed"
    assert min(marc_queries(simulator)).startswith("startdate=2014-01-02T00%3A00%3A00&")

    simulator.state.faults.clear()
    start_chain(collection, time_budget_seconds=60)  # the next chain, from the checkpoint
    drain(include_apply=False)

    purchased = {r.item_id for r in catalogue.records_between(typed, NOW, listed_by=NOW)}
    present = set(LicensePool.objects.values_list("identifier__value", flat=True))
    assert purchased - present == set()
