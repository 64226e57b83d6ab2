"""Apply runs: each page with changed items queues one, with the page, handed over once;
a failed apply's retry finds its rows; a page meeting an identifier another
transaction creates meanwhile is written whole."""

import threading
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection, connections
from django_q.models import OrmQ

from bibliotheca.models import Edition, Identifier, LicensePool, PendingEdition
from bibliotheca.services.pages import Decision, MarcPage, write_page
from bibliotheca.services.purchase_chain import get_timestamp
from bibliotheca.services.windows import Position
from jobs.models import JobRun
from jobs.runner import execute_queued_run
from tests.bibliotheca.conftest import APPLY, NOW, RECORDS, drain, staged_identifiers, start_chain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]


def test_one_hop__one_apply_run_per_page_with_changes_each_handed_over_once(collection, simulator):
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    applies = list(JobRun.objects.filter(job=APPLY).order_by("id"))
    # Pages of 50, 50, 20 a day (day 4 until 12:00: 50, 10), every record new.
    assert sorted(len(staged_identifiers(a)) for a in applies) == sorted(
        [50, 50, 20] * 3 + [50, 10]
    )
    assert all(set(a.kwargs) == {"collection_id", "batch"} for a in applies)
    ids = [i for a in applies for i in staged_identifiers(a)]
    assert len(ids) == len(set(ids)) == RECORDS
    handed_over = [task.task["kwargs"]["run_id"] for task in OrmQ.objects.all()]
    assert sorted(r for r in handed_over if r in {a.pk for a in applies}) == [a.pk for a in applies]

    drain()
    assert Edition.objects.count() == RECORDS
    assert not PendingEdition.objects.exists()  # every batch taken by its run
    title = Edition.objects.get(identifier__value="bib201401010007").title
    assert title == simulator.state.catalogue.item("bib201401010007")["Title"]


def _page(values: list[str], day: int) -> tuple[MarcPage, Decision]:
    """One page of `values`, all looked up and changed (Title "Title <value>")."""
    at = datetime(2014, 1, day, tzinfo=UTC)
    page = MarcPage(
        position=Position(current_day=at, offset=1),
        records=len(values),
        skipped=0,
        item_ids=values,
        marc_hashes={v: f"m{v}" for v in values},
        checkpoint=at,
        next=Position(current_day=at, offset=1),
    )
    changed = [(v, f"h{v}", {"Title": f"Title {v}"}) for v in values]
    return page, Decision(kept=values, looked=values, changed=changed, items_requests=1)


def _write(collection, values: list[str], day: int) -> dict:
    page, decision = _page(values, day)
    ts = get_timestamp(collection)
    return write_page(collection, page, decision, ts.progress, timestamp_id=ts.pk, now=NOW)


def _ident(value: str) -> int:
    return Identifier.objects.get(type="bibliotheca", value=value).pk


def test_failed_apply__keeps_its_staged_rows_and_its_retry_writes_them(collection):
    values = [f"r{n}" for n in range(3)]
    _write(collection, values, 2)
    (run,) = JobRun.objects.filter(job=APPLY)
    idents = [_ident(v) for v in values]
    with connection.cursor() as cursor:  # the database refuses editions for now
        cursor.execute(
            "CREATE FUNCTION refuse_edition() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'editions refused'; END $$; "
            "CREATE TRIGGER refuse_edition BEFORE INSERT ON bibliotheca_edition "
            "FOR EACH ROW EXECUTE FUNCTION refuse_edition()"
        )
    try:
        drain(max_runs=1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse_edition ON bibliotheca_edition; DROP FUNCTION refuse_edition()"
            )

    run.refresh_from_db()
    assert run.status == "failed" and "editions refused" in run.error
    assert staged_identifiers(run) == idents  # nothing taken
    assert not Edition.objects.exists()

    (retry,) = JobRun.objects.filter(job=APPLY, trigger="retry")
    JobRun.objects.filter(pk=retry.pk).update(scheduled_for=NOW)
    execute_queued_run(retry.pk)
    retry.refresh_from_db()
    assert retry.status == "succeeded" and retry.result["created"] == 3
    assert Edition.objects.filter(identifier_id__in=idents).count() == 3
    assert not PendingEdition.objects.exists()


def test_identifier_committed_by_another_transaction_meanwhile__page_is_written_whole(
    collection,
):
    """The page's insert of an identifier another transaction is inserting waits for it;
    once that one commits the page finds the identifier and is written whole, once."""
    get_timestamp(collection)
    other = psycopg.connect(**connections["default"].get_connection_params())
    other.execute("INSERT INTO bibliotheca_identifier (type, value) VALUES ('bibliotheca', 'x')")
    outcome: dict = {}

    def write() -> None:
        try:
            outcome["counts"] = _write(collection, ["w", "x"], 2)
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(timeout=1.0)
    assert writer.is_alive()  # its insert of 'x' waits for the other transaction
    other.commit()
    other.close()
    writer.join(timeout=10)

    counts = outcome["counts"]
    assert (counts["pages"], counts["records"], counts["new_pools"]) == (1, 2, 2)
    (run,) = JobRun.objects.filter(job=APPLY)
    assert staged_identifiers(run) == [_ident("w"), _ident("x")]
    pools = LicensePool.objects.filter(collection=collection)
    assert pools.count() == 2 and not pools.filter(metadata_checked_at=None).exists()
    assert get_timestamp(collection).finish == datetime(2014, 1, 2, tzinfo=UTC)


def test_an_older_apply_run_after_a_newer_one__leaves_the_newer_metadata(
    catalogue, collection, simulator
):
    """The apply cluster was down (or an apply run failed for good, its rows kept for a
    re-run) while a later chain looked the titles up again and applied their new
    metadata: the older run, delivered or re-run afterwards, wrote its older metadata
    over the newer one, and nothing corrected it until the titles were due again
    (BIBLIOTHECA_METADATA_REFRESH_DAYS later)."""
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    older = list(JobRun.objects.filter(job=APPLY, status="queued").order_by("id"))
    catalogue.metadata_version = 2  # the partner re-delivers every record, changed
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain(include_apply=False)
    newer = JobRun.objects.filter(job=APPLY, status="queued").exclude(pk__in=[r.pk for r in older])

    for run in [*newer.order_by("id"), *older]:  # the newer applied first, the older after
        execute_queued_run(run.pk)

    assert Edition.objects.count() == RECORDS
    assert Edition.objects.filter(title__endswith=" v2").count() == RECORDS
    assert not PendingEdition.objects.exists()
