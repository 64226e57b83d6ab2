"""Apply runs: consecutive pages share one, handed over when full; nothing lost when it
has left `queued`; runs queued in the earlier item format still apply."""

from datetime import UTC, datetime

import pytest
from django_q.models import OrmQ

from bibliotheca.models import Edition, LicensePool
from bibliotheca.services import purchase_chain
from bibliotheca.services.items import ITEM_FIELDS
from bibliotheca.services.purchase_records import PageGroup, finish_group, get_timestamp
from bibliotheca.services.windows import Position
from jobs.models import JobRun
from jobs.runner import enqueue_job, execute_queued_run
from tests.bibliotheca.conftest import APPLY, NOW, RECORDS, drain, start_chain

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
    assert [len(a.kwargs["items"]) for a in applies] == [170, 170, 80]
    assert all(a.kwargs["fields"] == list(ITEM_FIELDS) for a in applies)
    ids = [item["identifier_id"] for a in applies for item in a.kwargs["items"]]
    assert len(ids) == len(set(ids)) == RECORDS
    handed_over = [task.task["kwargs"]["run_id"] for task in OrmQ.objects.all()]
    assert sorted(r for r in handed_over if r in {a.pk for a in applies}) == [a.pk for a in applies]

    drain()
    assert Edition.objects.count() == RECORDS
    title = Edition.objects.get(identifier__value="bib201401010007").title
    assert title == simulator.state.catalogue.item("bib201401010007")["Title"]


def _group(collection, identifier_ids: list[int], day: int) -> PageGroup:
    group = PageGroup()
    items = [
        {"identifier_id": i, "data_hash": f"h{i}", "values": [f"Title {i}"] + [""] * 16}
        for i in identifier_ids
    ]
    group.add(
        purchase_records_counts(len(items)),
        items,
        [],
        checkpoint=datetime(2014, 1, day, tzinfo=UTC),
        next_at=Position(current_day=datetime(2014, 1, day, tzinfo=UTC), offset=1),
        now=NOW,
    )
    return group


def purchase_records_counts(records: int):
    from bibliotheca.services.purchase_records import _PageCounts

    return _PageCounts(records=records, skipped=0)


def test_run_that_left_queued__gets_no_more_items_they_go_to_a_new_run(collection):
    from bibliotheca.models import Identifier

    idents = [Identifier.objects.create(type="bibliotheca", value=f"v{n}").pk for n in range(4)]
    get_timestamp(collection)
    _, first = finish_group(collection, _group(collection, idents[:2], 2))
    JobRun.objects.filter(pk=first).update(status="running")  # handed over meanwhile

    progress, second = finish_group(collection, _group(collection, idents[2:], 3), open_run=first)

    assert second != first
    assert [i["identifier_id"] for i in JobRun.objects.get(pk=first).kwargs["items"]] == idents[:2]
    assert [i["identifier_id"] for i in JobRun.objects.get(pk=second).kwargs["items"]] == idents[2:]
    assert progress["pages"] == 2 and progress["applies_queued"] == 4
    assert get_timestamp(collection).finish == datetime(2014, 1, 3, tzinfo=UTC)

    _, third = finish_group(collection, _group(collection, idents[:1], 4), open_run=second)
    assert third == second  # still queued: appended
    assert len(JobRun.objects.get(pk=second).kwargs["items"]) == 3


def test_apply_run_queued_with_item_dicts__still_writes_editions(collection):
    from bibliotheca.models import Identifier

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
    assert [len(a.kwargs["items"]) for a in applies] == [50, 50, 20] * 3 + [50, 10]
    handed_over = {task.task["kwargs"]["run_id"] for task in OrmQ.objects.all()}
    assert {a.pk for a in applies} <= handed_over
