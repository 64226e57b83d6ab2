"""Purchases the partner lists late are imported by the next chain, which re-reads the
hour before its checkpoint (BIBLIOTHECA_OVERLAP_MINUTES); none is imported twice."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from bibliotheca.models import Edition, LicensePool
from devkit.bibliotheca_simulator import Catalogue
from jobs.models import JobRun
from tests.bibliotheca.conftest import CHAIN, drain, start_chain

pytestmark = pytest.mark.django_db(transaction=True)

#: One purchase every 2 minutes: at NOON, those of 11:56 and 11:58 are not listed yet.
NOON = datetime(2014, 1, 1, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2014, 1, 2, tzinfo=UTC)


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue(days=2, records_per_day=720, listing_delay=timedelta(minutes=5))


@pytest.mark.parametrize(("overlap_minutes", "lost"), [(60, 0), (0, 2)])
def test_late_listing_then_on_time__every_record_present_none_twice(
    catalogue, collection, simulator, settings, overlap_minutes, lost
):
    settings.BIBLIOTHECA_OVERLAP_MINUTES = overlap_minutes
    with time_machine.travel(NOON, tick=False) as clock:
        start_chain(collection, time_budget_seconds=60)
        drain()
        assert LicensePool.objects.count() == 360 - 2  # 11:56 and 11:58: listed later

        catalogue.listing_delay = timedelta(0)
        clock.move_to(MIDNIGHT)
        start_chain(collection, time_budget_seconds=60)
        drain()

    expected = {r.item_id for r in catalogue.records_between(NOON - timedelta(hours=12), MIDNIGHT)}
    present = set(LicensePool.objects.values_list("identifier__value", flat=True))
    assert len(expected - present) == lost and present <= expected
    assert Edition.objects.count() == len(present)  # one apply per title, none twice
    first, second = (r.result for r in JobRun.objects.filter(job=CHAIN).order_by("id"))
    assert first["new_pools"] + second["new_pools"] == len(present)
    if overlap_minutes:
        # The cost: the hour 11:00-12:00 read again, 30 records, 2 of them new.
        assert second["from"] == "2014-01-01T11:00:00+00:00"
        assert (second["overlap_pages"], second["overlap_records"]) == (1, 30)
    else:
        assert second["from"] == NOON.isoformat() and second["overlap_records"] == 0
