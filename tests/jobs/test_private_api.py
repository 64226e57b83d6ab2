"""The internal Django and django-q2 API we depend on (docs/architecture.md "Internal API we
depend on"): each test fails when an upgrade changes what we read, so the upgrade stops
here and not in production."""

import pytest
from django.conf import settings
from django.contrib import admin
from django.core.signing import Signer
from django.db import connection, transaction
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import Failure, OrmQ, Schedule, Success
from django_q.signing import SignedPackage

from jobs.queue.broker import SkipLockedORMBroker
from jobs.queue.states import _decode

pytestmark = pytest.mark.django_db


def test_connection_atomic_blocks__one_entry_per_open_atomic_block():
    """The soft time limit (jobs.runs.soft_limit) stops only outside the job's own transactions."""
    depth = len(connection.atomic_blocks)
    with transaction.atomic():
        assert len(connection.atomic_blocks) == depth + 1
        with transaction.atomic():
            assert len(connection.atomic_blocks) == depth + 2
    assert len(connection.atomic_blocks) == depth


def test_ormq_task__reads_our_package_and_marks_a_foreign_signature():
    """jobs.queue.states decodes queued tasks through OrmQ.task."""
    ours = SignedPackage.dumps({"id": "abc", "func": "jobs.runner.execute_queued_run"})
    assert OrmQ(payload=ours).task["id"] == "abc"
    assert _decode(ours)["id"] == "abc"
    foreign = Signer(key="another-key", salt="django_q.q").sign("x")
    assert str(OrmQ(payload=foreign).task["id"]).startswith("*")
    assert _decode(foreign) is None


def test_broker__extends_the_orm_broker_with_the_settings_conf_exposes():
    """jobs.queue.broker subclasses django-q2's ORM broker and reads Conf's names of its settings."""
    assert issubclass(SkipLockedORMBroker, ORM)
    cluster = settings.Q_CLUSTER
    assert (Conf.RETRY, Conf.BULK, Conf.POLL) == (
        cluster["retry"],
        cluster["bulk"],
        cluster["poll"],
    )
    assert Conf.ORM in (None, "default")


def test_queue_admins__replace_django_q2s_admin_classes():
    """jobs.admin.queue subclasses django-q2's admin classes to make them read-only."""
    import django_q.admin as q_admin

    for model, base in (
        (Schedule, q_admin.ScheduleAdmin),
        (Success, q_admin.TaskAdmin),
        (Failure, q_admin.FailAdmin),
        (OrmQ, q_admin.QueueAdmin),
    ):
        assert isinstance(admin.site.get_model_admin(model), base)
