"""django-q2's ORM broker dequeuing a batch in one `SKIP LOCKED` statement (the stock one locks
row by row and collides with other clusters); only tasks the queue guard admits reach the cluster."""

from datetime import timedelta
from time import sleep

from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

from jobs import sql
from jobs.queue import guard


class SkipLockedORMBroker(ORM):
    def dequeue(self):
        self.get_connection()  # closes stale connections outside transactions
        now = timezone.now()
        lock_until = now + timedelta(seconds=Conf.RETRY)
        params = {"key": self.list_key, "now": now, "lock_until": lock_until, "limit": Conf.BULK}
        if rows := sql.fetch(sql.DEQUEUE_BATCH, params, using=Conf.ORM or "default"):
            return guard.admit(self, sorted(rows))
        sleep(Conf.POLL)
        return None

    def delete(self, task_id):
        # acknowledge() and fail() both end here.
        self.get_connection()
        sql.fetch(sql.DELETE_QUEUE_TASK, {"id": task_id}, using=Conf.ORM or "default")
