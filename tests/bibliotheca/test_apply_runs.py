"""Apply runs: consecutive pages stage their Edition rows for one, handed over when full;
nothing lost when it has left `queued`; a failed apply's retry finds its rows; runs
queued in the earlier item format still apply."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django_q.models import OrmQ

from bibliotheca.models import Edition, Identifier, LicensePool, PendingEdition
from bibliotheca.services import purchase_chain
from bibliotheca.services.apply import edition_row
from bibliotheca.services.purchase_records import (
    PageGroup,
    ReadPage,
    finish_group,
    get_timestamp,
)
from bibliotheca.services.windows import Position
from jobs.models import JobRun
from jobs.runner import enqueue_job, execute_queued_run
from tests.bibliotheca.conftest import (
    APPLY,
    NOW,
    RECORDS,
    drain,
    staged_identifiers,
    start_chain,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]


def test_one_hop__shares_apply_runs_between_pages_and_hands_each_over_once(
    collection, simulator, monkeypatch
):
    monkeypatch.setattr(purchase_chain, "APPLY_RUN_ITEMS", 150)
    monkeypatch.setattr(purchase_chain, "APPLY_RUN_SECONDS", 3600.0)
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    applies = list(JobRun.objects.filter(job=APPLY).order_by("id"))
    # Pages of 50, 50, 20 a day: a run is handed over once it holds 150 items or more
    # (50+50+20+50, 50+20+50+50), the last one when the hop ends (50+20+10).
    assert [len(staged_identifiers(a)) for a in applies] == [170, 170, 80]
    assert all(set(a.kwargs) == {"collection_id", "batch"} for a in applies)
    ids = [i for a in applies for i in staged_identifiers(a)]
    assert len(ids) == len(set(ids)) == RECORDS
    handed_over = [task.task["kwargs"]["run_id"] for task in OrmQ.objects.all()]
    assert sorted(r for r in handed_over if r in {a.pk for a in applies}) == [a.pk for a in applies]

    drain()
    assert Edition.objects.count() == RECORDS
    assert not PendingEdition.objects.exists()  # every batch taken by its run
    assert [a.result["created"] for a in JobRun.objects.filter(job=APPLY).order_by("id")] == [
        170,
        170,
        80,
    ]
    title = Edition.objects.get(identifier__value="bib201401010007").title
    assert title == simulator.state.catalogue.item("bib201401010007")["Title"]


def _group(values: list[str], day: int) -> PageGroup:
    """One page of `values`, all looked up and changed (Title "Title <value>")."""
    at = datetime(2014, 1, day, tzinfo=UTC)
    group = PageGroup()
    group.add(
        ReadPage(
            position=Position(current_day=at, offset=1),
            records=len(values),
            skipped=0,
            item_ids=values,
            checkpoint=at,
            next=Position(current_day=at, offset=1),
            now=NOW,
            items_requests=1,
            looked=values,
            changed=[edition_row(f"h{v}", {"Title": f"Title {v}"}, value=v) for v in values],
        )
    )
    return group


def _ident(value: str) -> int:
    return Identifier.objects.get(type="bibliotheca", value=value).pk


def test_run_that_left_queued__gets_no_more_items_they_go_to_a_new_run(collection):
    values = [f"v{n}" for n in range(4)]
    get_timestamp(collection)
    first = finish_group(collection, _group(values[:2], 2)).run
    JobRun.objects.filter(pk=first.run_id).update(status="running")  # claimed meanwhile

    written = finish_group(collection, _group(values[2:], 3), open_run=first)

    second = written.run
    assert second.run_id != first.run_id and second.batch != first.batch
    assert staged_identifiers(JobRun.objects.get(pk=first.run_id)) == [
        _ident(v) for v in values[:2]
    ]
    assert staged_identifiers(JobRun.objects.get(pk=second.run_id)) == [
        _ident(v) for v in values[2:]
    ]
    assert written.progress["pages"] == 2 and written.progress["applies_queued"] == 4
    assert written.progress["new_pools"] == written.new_pools + 2 == 4
    assert get_timestamp(collection).finish == datetime(2014, 1, 3, tzinfo=UTC)
    assert (
        LicensePool.objects.filter(collection=collection).exclude(metadata_checked_at=None).count()
        == 4
    )  # every pool stamped, its row staged

    third = finish_group(collection, _group(values[:1], 4), open_run=second).run
    assert third == second  # still queued: staged for it
    assert staged_identifiers(JobRun.objects.get(pk=second.run_id)) == [
        _ident(v) for v in [*values[2:], values[0]]
    ]

    execute_queued_run(second.run_id)
    second_run = JobRun.objects.get(pk=second.run_id)
    # Three rows staged, one per identifier written.
    assert second_run.result == {
        "collection_id": collection.pk,
        "batch": second.batch,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
    }
    assert Edition.objects.get(identifier_id=_ident("v0")).title == "Title v0"


def test_run_claimed_before_the_page_statement__writes_nothing_of_the_page(collection):
    """The gate: a page whose open run has left `queued` writes no stamp, staged row or
    checkpoint with it (only idempotent, unstamped identifiers and pools)."""
    from bibliotheca.services.page_statement import write_group

    get_timestamp(collection)
    first = finish_group(collection, _group(["a"], 2)).run
    JobRun.objects.filter(pk=first.run_id).update(status="running")
    group = _group(["b"], 3)

    written = write_group(collection, group, changed=list(group.changed.values()), open_run=first)

    assert not written.ok and not written.run_queued
    assert get_timestamp(collection).finish == datetime(2014, 1, 2, tzinfo=UTC)
    assert PendingEdition.objects.filter(identifier_id=_ident("b")).count() == 0
    pool = LicensePool.objects.get(collection=collection, identifier_id=_ident("b"))
    assert pool.metadata_checked_at is None  # due again when the page is read again


def test_failed_apply__keeps_its_staged_rows_and_its_retry_writes_them(collection):
    values = [f"r{n}" for n in range(3)]
    get_timestamp(collection)
    run = finish_group(collection, _group(values, 2)).run
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

    failed = JobRun.objects.get(pk=run.run_id)
    assert failed.status == "failed" and "editions refused" in failed.error
    assert staged_identifiers(failed) == idents  # nothing taken
    assert not Edition.objects.exists()

    (retry,) = JobRun.objects.filter(job=APPLY, trigger="retry")
    JobRun.objects.filter(pk=retry.pk).update(scheduled_for=NOW)
    execute_queued_run(retry.pk)
    retry.refresh_from_db()
    assert retry.status == "succeeded" and retry.result["created"] == 3
    assert Edition.objects.filter(identifier_id__in=idents).count() == 3
    assert not PendingEdition.objects.exists()


def test_apply_run_queued_with_item_dicts__still_writes_editions(collection):
    ident = Identifier.objects.create(type="bibliotheca", value="old-format")
    LicensePool.objects.create(collection=collection, identifier=ident)
    run = enqueue_job(
        APPLY,
        kwargs={
            "collection_id": collection.pk,
            "items": [
                {"identifier_id": ident.pk, "data_hash": "h", "data": {"Title": "Old format"}}
            ],
        },
        trigger="command",
    )

    execute_queued_run(run.pk)

    run.refresh_from_db()
    assert run.status == "succeeded" and run.result["created"] == 1
    assert Edition.objects.get(identifier=ident).title == "Old format"


def test_apply_run_older_than_apply_run_seconds__is_handed_over_at_the_next_page(
    collection, simulator, monkeypatch
):
    monkeypatch.setattr(purchase_chain, "APPLY_RUN_ITEMS", 10_000)
    monkeypatch.setattr(purchase_chain, "APPLY_RUN_SECONDS", 0.0)
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)

    # Always old enough: each page's items are a run of their own, handed over at once.
    applies = list(JobRun.objects.filter(job=APPLY).order_by("id"))
    assert [len(staged_identifiers(a)) for a in applies] == [50, 50, 20] * 3 + [50, 10]
    handed_over = {task.task["kwargs"]["run_id"] for task in OrmQ.objects.all()}
    assert {a.pk for a in applies} <= handed_over


def test_identifier_committed_by_another_transaction_meanwhile__page_is_written_again(
    collection,
):
    """An identifier another transaction commits while the page's statement waits on it
    is not in the statement's snapshot: that attempt writes nothing but pools, and the
    next one finds it; the page ends up whole, counted once."""
    import threading

    import psycopg
    from django.db import connections

    get_timestamp(collection)
    settings = connections["default"].get_connection_params()
    other = psycopg.connect(**settings)
    other.execute("INSERT INTO bibliotheca_identifier (type, value) VALUES ('bibliotheca', 'x')")
    outcome: dict = {}

    def write() -> None:
        try:
            outcome["written"] = finish_group(collection, _group(["w", "x"], 2))
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(timeout=1.0)
    assert writer.is_alive()  # its insert of 'x' waits for the other transaction
    other.commit()
    other.close()
    writer.join(timeout=10)

    written = outcome["written"]
    assert written.progress["pages"] == 1 and written.progress["records"] == 2
    assert written.progress["new_pools"] == 2 and written.progress["applies_queued"] == 2
    assert staged_identifiers(JobRun.objects.get(pk=written.run.run_id)) == [
        _ident("w"),
        _ident("x"),
    ]
    pools = LicensePool.objects.filter(collection=collection)
    assert pools.count() == 2 and not pools.filter(metadata_checked_at=None).exists()
    assert get_timestamp(collection).finish == datetime(2014, 1, 2, tzinfo=UTC)
