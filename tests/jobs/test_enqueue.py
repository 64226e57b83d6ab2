"""enqueue_job hands a run to the queue table only once the run is committed, and a run
whose task the database refuses is recorded failed rather than left `queued` for ever."""

import pytest
from django.db import DatabaseError, connection, transaction
from django_q.models import OrmQ

from jobs.models import JobRun
from jobs.queue.states import waiting_run_ids
from jobs.runner import enqueue_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_task_reaches_the_queue_with_the_commit_not_before():
    with transaction.atomic():
        run = enqueue_job("devkit.demo_job", kwargs={"items": 3}, trigger="command")
        assert not OrmQ.objects.exists()
    assert waiting_run_ids() == {run.pk}
    assert OrmQ.objects.get().key == "default"


@pytest.fixture
def queue_refuses_inserts():
    """A trigger makes PostgreSQL reject every new queue row (a full disk, a revoked grant)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_refuse_task() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'queue refuses tasks'; END $$;
            CREATE TRIGGER test_refuse_task BEFORE INSERT ON django_q_ormq
            FOR EACH ROW EXECUTE FUNCTION test_refuse_task();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_refuse_task ON django_q_ormq; DROP FUNCTION test_refuse_task();"
        )


def test_queue_refuses_the_task__the_run_is_failed_not_left_queued(queue_refuses_inserts):
    with pytest.raises(DatabaseError, match="queue refuses tasks"):
        enqueue_job("devkit.demo_job", trigger="command")

    run = JobRun.objects.get()
    assert run.status == "failed" and run.finished_at is not None
    assert run.error.startswith("not queued, the broker refused it: ")
    assert "queue refuses tasks" in run.error
    assert not OrmQ.objects.exists()
