"""The cluster runs our job entry points only; django-q2's admin cannot schedule anything."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Failure, OrmQ, Schedule
from django_q.tasks import async_task

from devkit.waiting import wait_for_run, wait_until
from jobs.models import Alert, JobRun
from jobs.queue.guard import REFUSED_JOB, refusal_reason
from jobs.runner import enqueue_job
from jobs.runs.queue_task import EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB
from tests.admin_helpers import post_action, staff_client

SCHEDULER_WAIT = 45  # the scheduler runs at start-up; room for one more 30 s pass
Q_SCHEDULE_PERMS = [
    ("django_q", codename)
    for codename in ("add_schedule", "change_schedule", "delete_schedule", "view_schedule")
]


@pytest.mark.parametrize(
    "task, refused",
    [
        ({"func": EXECUTE_QUEUED_RUN, "kwargs": {"run_id": 7}}, None),
        ({"func": RUN_SCHEDULED_JOB, "args": ("jobs.prune_history",), "kwargs": {}}, None),
        ({"func": "os.system", "args": ("id",)}, "function 'os.system' is not a job entry point"),
        (
            {"func": RUN_SCHEDULED_JOB, "args": ("os.system",)},
            "'os.system' is not a registered job",
        ),
        (
            {"func": RUN_SCHEDULED_JOB, "args": ("jobs.prune_history",), "kwargs": {"x": 1}},
            "jobs.runner.run_scheduled_job: got an unexpected keyword argument 'x'",
        ),
        (
            {"func": EXECUTE_QUEUED_RUN, "kwargs": {"run_id": 7}, "hook": "os.system"},
            "django-q2 hook 'os.system' is not ours",
        ),
        (
            {"func": EXECUTE_QUEUED_RUN, "kwargs": {"run_id": "7; rm"}},
            "jobs.runner.execute_queued_run takes run_id=<int>, not '7; rm'",
        ),
    ],
)
def test_refusal_reason(task, refused):
    reason = refusal_reason(task)
    assert reason == refused if refused is None else reason.startswith(refused)


@pytest.mark.django_db
def test_foreign_task__refused_by_the_broker_and_recorded(
    tmp_path, django_capture_on_commit_callbacks
):
    """The cluster's broker never hands it over: os.system never reaches a worker."""
    marker = tmp_path / "pwned"
    async_task("os.system", f"touch {marker}", group="evil")
    with django_capture_on_commit_callbacks(execute=True):
        ours = enqueue_job("devkit.demo_job", trigger="command")

    handed = get_broker().dequeue()

    run = JobRun.objects.get(job=REFUSED_JOB)
    assert [OrmQ(payload=package).task["kwargs"] for _, package in handed] == [{"run_id": ours.pk}]
    assert not marker.exists() and OrmQ.objects.count() == 1  # ours, until acknowledged
    assert (run.status, run.needs_attention, run.trigger) == ("failed", True, "schedule")
    assert run.error == "refused: function 'os.system' is not a job entry point"
    assert run.kwargs["func"] == "os.system" and str(marker) in run.kwargs["args"]
    failure = Failure.objects.get(func="os.system")
    assert failure.args == (f"touch {marker}",) and failure.group == "evil"


@pytest.mark.django_db
def test_scheduled_slot_of_a_job_needing_arguments__refused_before_a_run_exists():
    """A Schedule row naming a job that cannot run without arguments (edited by hand):
    the job's own check refuses it, no run of the job exists, the refusal is flagged."""
    async_task(RUN_SCHEDULED_JOB, "exchanges.match_exchange", group="hand-made")

    assert get_broker().dequeue() == []

    assert not JobRun.objects.filter(job="exchanges.match_exchange").exists()
    refused = JobRun.objects.get(job=REFUSED_JOB)
    assert refused.error == (
        "refused: scheduled without arguments: exchanges.match_exchange:"
        " missing a required argument: 'exchange_id'"
    )
    assert refused.needs_attention and OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_schedule_admin__read_only_even_with_every_schedule_permission(client):
    staff_client(client, "scheduler", Q_SCHEDULE_PERMS)
    add = reverse("admin:django_q_schedule_add")
    denied = client.post(add, {"func": "os.system", "args": "'id'", "schedule_type": "O"})
    ours = Schedule.objects.get(name="jobs.prune_history")
    change = reverse("admin:django_q_schedule_change", args=[ours.pk])
    delete = reverse("admin:django_q_schedule_delete", args=[ours.pk])
    page = client.get(change)
    assert (client.get(add).status_code, denied.status_code) == (403, 403)
    assert page.status_code == 200 and b'name="func"' not in page.content
    assert client.post(change, {"func": "os.system"}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert not Schedule.objects.filter(func="os.system").exists()
    assert Schedule.objects.get(pk=ours.pk).func == RUN_SCHEDULED_JOB


@pytest.mark.django_db
def test_schedule_admin__a_foreign_schedule_can_be_deleted(client):
    foreign = Schedule.objects.create(name="evil", func="os.system", args="'id'")
    staff_client(client, "scheduler", Q_SCHEDULE_PERMS)
    url = reverse("admin:django_q_schedule_delete", args=[foreign.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not Schedule.objects.filter(pk=foreign.pk).exists()


@pytest.mark.django_db
def test_failure_admin__no_resubmit(client):
    Failure.objects.create(
        id="a" * 32, name="evil", func="os.system", args=("id",), kwargs={},
        started=timezone.now(), stopped=timezone.now(), success=False,
    )  # fmt: skip
    perms = [("django_q", c) for c in ("view_failure", "change_failure", "delete_failure")]
    staff_client(client, "failures", perms)
    url = reverse("admin:django_q_failure_changelist")
    page = client.get(url).content.decode()
    response = post_action(client, url, "resubmit_task", "a" * 32)
    assert "resubmit_task" not in page and "delete_selected" not in page
    assert response.status_code == 200  # "No action selected", nothing done
    assert OrmQ.objects.count() == 0 and Failure.objects.count() == 1


@pytest.mark.e2e
def test_cluster__refuses_a_foreign_schedule_and_task_and_runs_ours(
    qcluster, tmp_path, fresh_schedules
):
    past = timezone.now() - timedelta(seconds=1)
    Schedule.objects.filter(name="tests.tick").update(next_run=past)
    marker: Path = tmp_path / "pwned"
    Schedule.objects.create(
        name="evil", func="os.system", args=repr(f"touch {marker}"), next_run=past
    )
    async_task("os.system", f"touch {marker}-queued")  # a "Resubmit" of someone's task
    ok = enqueue_job("devkit.demo_job", kwargs={"items": 3}, trigger="command")
    qcluster.start(["default"], scheduler_at_start=True)

    refused = wait_until(
        lambda: (
            list(JobRun.objects.filter(job=REFUSED_JOB).order_by("id")) or None
            if JobRun.objects.filter(job=REFUSED_JOB).count() >= 2
            else None
        ),
        timeout_seconds=SCHEDULER_WAIT,
        what="both foreign tasks to be refused",
    )
    tick = wait_until(
        lambda: JobRun.objects.filter(job="tests.tick", status="succeeded").first(),
        timeout_seconds=SCHEDULER_WAIT,
        what="our own schedule to run",
    )
    health = staff_client(Client(), "oncall", [("jobs", "view_jobrun")]).get("/health/").json()

    assert wait_for_run(ok.pk, timeout_seconds=30).status == "succeeded" and tick
    assert not marker.exists() and not Path(f"{marker}-queued").exists()
    assert {r.kwargs["schedule_or_group"] for r in refused} >= {"evil"}
    assert all(r.error.startswith("refused: function 'os.system'") for r in refused)
    failures = wait_until(
        lambda: list(Failure.objects.filter(func="os.system")) or None,
        timeout_seconds=30,
        what="django-q2 to record the refused tasks as failures",
    )
    assert (f"touch {marker}-queued",) in [f.args for f in failures]  # the real arguments
    # A refused task is a warning an alert carries, not a day of 503.
    # Only the default queue has a cluster here, so the cluster check names the others.
    failing = [name for name, check in health["checks"].items() if check["state"] == "fail"]
    assert failing == ["cluster"] and health["checks"]["attention"]["state"] == "warn"
    assert "refused task: function 'os.system'" in health["checks"]["attention"]["detail"]
    alert = Alert.objects.get(job=REFUSED_JOB)
    assert (alert.kind, alert.count) == ("failed", 2)
