"""Items: a record whose MARC changed is looked up again whatever its last check; items
the partner leaves out are counted, reported and skipped until their record changes; a
title shared by collections is staged once for its apply."""

from datetime import timedelta

import pytest

from bibliotheca.models import Edition, LicensePool, PendingEdition
from jobs.models import JobRun
from tests.bibliotheca.conftest import APPLY, CHAIN, NOW, PAGES, RECORDS, drain, start_chain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]

#: Three titles of day 1 the partner's items answer leaves out.
MISSING = {"bib201401010003", "bib201401010040", "bib201401010100"}


def last_result() -> dict:
    return JobRun.objects.filter(job=CHAIN).order_by("-id").first().result


def items_asked(simulator) -> set[str]:
    return {
        item
        for endpoint, detail in simulator.state.log
        if endpoint == "items"
        for item in detail.rsplit("/", 1)[1].split(",")
    }


def test_changed_marc__is_looked_up_again_whatever_its_last_check(catalogue, collection, simulator):
    start_chain(collection, time_budget_seconds=60)
    drain()
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain()
    assert last_result()["items_requests"] == 0  # same records, checked today: not due

    catalogue.metadata_version = 2  # the partner re-delivers every record, changed
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain()

    result = last_result()
    assert (result["items_requests"], result["applies_queued"]) == (PAGES, RECORDS)
    assert Edition.objects.filter(title__endswith=" v2").count() == RECORDS


def test_missing_items__counted_reported_and_skipped_until_their_record_changes(
    catalogue, collection, simulator, caplog
):
    catalogue.missing_items = set(MISSING)
    start_chain(collection, time_budget_seconds=60)
    drain()

    assert last_result()["missing_items"] == 3
    reported = [
        r.getMessage() for r in caplog.records if "left out of the partner" in r.getMessage()
    ]
    assert all(any(item in line for line in reported) for item in MISSING)
    missing = LicensePool.objects.filter(identifier__value__in=MISSING)
    assert missing.count() == 3 and set(missing.values_list("item_missing_since", flat=True)) == {
        NOW
    }
    assert Edition.objects.count() == RECORDS - 3

    # Long after the refresh days, every pool is due again, but the missing ones.
    LicensePool.objects.update(metadata_checked_at=NOW - timedelta(days=90))
    simulator.state.log.clear()
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain()
    asked = items_asked(simulator)
    assert len(asked) == RECORDS - 3 and not asked & MISSING
    assert last_result()["missing_items"] == 0

    # Their records change (and the partner answers for them again): looked up.
    catalogue.missing_items.clear()
    catalogue.metadata_version = 2
    start_chain(collection, time_budget_seconds=60, force_reimport=True)
    drain()
    assert not LicensePool.objects.filter(item_missing_since__isnull=False).exists()
    assert Edition.objects.count() == RECORDS


def test_collections_sharing_titles__stage_each_title_once(make_collection, simulator):
    first, second = make_collection(name="First"), make_collection(name="Second")
    start_chain(first, time_budget_seconds=60)
    start_chain(second, time_budget_seconds=60)

    drain(include_apply=False)  # the apply queue is not consumed meanwhile

    results = [r.result for r in JobRun.objects.filter(job=CHAIN).order_by("id")]
    assert [r["applies_queued"] for r in results] == [RECORDS, 0]
    assert PendingEdition.objects.count() == RECORDS
    assert JobRun.objects.filter(job=APPLY, kwargs__collection_id=second.pk).count() == 0
    drain()
    assert Edition.objects.count() == RECORDS and not PendingEdition.objects.exists()
    assert LicensePool.objects.filter(collection=second).count() == RECORDS
