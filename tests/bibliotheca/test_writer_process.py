"""A hop writes its pages from a forked child: same rows, errors raised by the hop."""

import os
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import override_settings

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import LicensePool, Timestamp
from bibliotheca.services.purchase_chain import purchase_lock_key
from bibliotheca.services.writer_process import ForkedPageWriter, WriterProcessDied
from jobs.models import JobRun, Lease
from tests.bibliotheca.conftest import (
    APPLY,
    CHAIN,
    NOW,
    PAGES,
    RECORDS,
    drain,
    staged_identifiers,
    start_chain,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]


def run_one_hop(collection) -> JobRun:
    start_chain(collection, time_budget_seconds=60)
    drain(include_apply=False)
    return JobRun.objects.filter(job=CHAIN).latest("id")


def timestamp(collection) -> Timestamp:
    return Timestamp.objects.get(service=PURCHASE_RECORD_SERVICE, collection=collection)


@pytest.mark.parametrize("writer_process", [True, False])
def test_child_and_threads__write_the_same_import(collection, simulator, writer_process):
    with override_settings(BIBLIOTHECA_WRITER_PROCESS=writer_process):
        run = run_one_hop(collection)

    assert run.status == "succeeded"
    assert run.result["writer"] == ("process" if writer_process else "threads")
    assert run.result["pages"] == PAGES and run.result["records"] == RECORDS
    assert run.result["new_pools"] == RECORDS and run.result["applies_queued"] == RECORDS
    assert LicensePool.objects.filter(collection=collection).count() == RECORDS
    ts = timestamp(collection)
    assert ts.finish == NOW and ts.progress["pages"] == PAGES
    applies = JobRun.objects.filter(job=APPLY)
    assert sum(len(staged_identifiers(a)) for a in applies) == RECORDS
    assert {a.parent_id for a in applies} == {run.pk}


@pytest.fixture
def pools_fail_on_day_2():
    """A database error in the writer: inserting a pool for a day-2 record fails."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_refuse_pool() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT value FROM bibliotheca_identifier WHERE id = NEW.identifier_id)
                   LIKE 'bib20140102%' THEN
                    RAISE EXCEPTION 'pool refused for %', NEW.identifier_id;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse_pool BEFORE INSERT ON bibliotheca_licensepool
            FOR EACH ROW EXECUTE FUNCTION test_refuse_pool();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_refuse_pool ON bibliotheca_licensepool;"
            "DROP FUNCTION test_refuse_pool();"
        )


def test_error_in_the_child__fails_the_hop_with_its_class_and_keeps_the_checkpoint(
    collection, simulator, pools_fail_on_day_2
):
    run = run_one_hop(collection)

    assert run.status == "failed"
    assert run.error.startswith("ProgrammingError: pool refused for")
    assert "in the page writer process" in run.traceback
    ts = timestamp(collection)
    assert ts.finish == datetime(2014, 1, 2, tzinfo=UTC)  # day 1 written, nothing after
    assert ts.exception == run.error
    assert LicensePool.objects.filter(collection=collection).count() == 120
    assert not Lease.objects.filter(key=purchase_lock_key(collection.pk)).exists()
    assert not JobRun.objects.filter(job=CHAIN, status="queued").exists()


class _DiesOnSubmit:
    """A writer whose process dies at the first group (killed, out of memory)."""

    def __init__(self, totals: dict[str, int]) -> None:
        pass

    def __enter__(self) -> "_DiesOnSubmit":
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def submit(self, pages: list) -> None:
        os._exit(9)


def test_child_that_dies__is_reported_by_the_hop():
    with (
        pytest.raises(WriterProcessDied, match="exited"),
        ForkedPageWriter(_DiesOnSubmit, {}) as writer,
    ):
        writer.submit([])
        writer.finish()
