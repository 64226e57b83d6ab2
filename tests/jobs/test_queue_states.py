"""Queue depth and oldest waiting task per cluster: one query on the queue table."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from jobs.queue.states import QueueState, queue_states

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 5, 6, 7, 0, tzinfo=UTC)


def test_orm_queue_states__depth_counts_every_row_oldest_is_the_oldest_not_taken():
    OrmQ.objects.create(key="default", payload="x", lock=T0)
    OrmQ.objects.create(key="default", payload="x", lock=T0 + timedelta(seconds=30))
    # Taken by a cluster: `lock` is when it may be handed out again, in the future.
    OrmQ.objects.create(key="apply", payload="x", lock=T0 + timedelta(hours=1))

    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        with CaptureQueriesContext(connection) as queries:
            states = queue_states()

    assert len(queries) == 1
    assert states == {
        "default": QueueState(depth=2, oldest_enqueued_at=T0),
        "notifications": QueueState(depth=0),
        "apply": QueueState(depth=1, oldest_enqueued_at=None),
        "subscriptions": QueueState(depth=0),
    }
