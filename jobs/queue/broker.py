"""django-q2's ORM broker, dequeuing a batch in one statement with FOR UPDATE SKIP LOCKED.

The stock ORM broker selects `bulk` rows, then issues one UPDATE per row to lock it,
and loses races to other clusters row by row. Here one UPDATE ... WHERE id IN
(SELECT ... FOR UPDATE SKIP LOCKED) RETURNING claims the whole batch; concurrent
pushers skip each other's rows instead of colliding. Acknowledging a task is one
autocommit DELETE: the stock broker's QuerySet.delete() wraps it in BEGIN/COMMIT, three
round trips per task in the monitor, the cluster's single-process bottleneck. Measured in
bench/queue_throughput.py. Only tasks the queue guard admits reach the cluster
(jobs.queue.guard: our job entry points).
"""

from datetime import timedelta
from time import sleep

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

from jobs import sql
from jobs.queue import guard


class SkipLockedORMBroker(ORM):
    def dequeue(self):
        self.get_connection()  # closes stale connections outside transactions
        now = timezone.now()
        with connections[Conf.ORM or "default"].cursor() as cursor:
            cursor.execute(
                sql.DEQUEUE_BATCH,
                {
                    "key": self.list_key,
                    "now": now,
                    "lock_until": now + timedelta(seconds=Conf.RETRY),
                    "limit": Conf.BULK,
                },
            )
            rows = cursor.fetchall()
        if rows:
            rows.sort()
            return guard.admit(self, [(row[0], row[1]) for row in rows])
        sleep(Conf.POLL)
        return None

    def delete(self, task_id):
        # acknowledge() and fail() both end here.
        self.get_connection()
        with connections[Conf.ORM or "default"].cursor() as cursor:
            cursor.execute(sql.DELETE_QUEUE_TASK, {"id": task_id})
