"""What operators touch: run_job/list_jobs/jobs_health commands, /health/, admin permissions."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from jobs.models import JobRun
from jobs.queue.schedules import sync_schedules
from tests.admin_helpers import make_staff
from tests.commands import run_command

pytestmark = pytest.mark.django_db


def test_run_job__runs_in_process_and_records_history():
    output = run_command("run_job", "devkit.demo_job", "items=4")

    run = JobRun.objects.get()
    assert (run.status, run.trigger, run.kwargs) == ("succeeded", "command", {"items": 4})
    assert f"run #{run.pk} succeeded" in output and '"checksum": 6' in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no.such_job"], "unknown job 'no.such_job'"),
        (["devkit.demo_job", "colour=red"], "unexpected keyword argument 'colour'"),
        (["devkit.demo_job", "items"], "bad argument 'items': expected key=value"),
        (["devkit.demo_job", "items=1", "items=2"], "argument 'items' given twice"),
        (["devkit.demo_job", "items=abc"], "argument items='abc' is not int"),
        (["devkit.demo_job", "items=true"], "argument items='true' is not int"),
        (["jobs.prune_history", "older_than_days=1.5"], "older_than_days=1.5 is not int | None"),
    ],
)
def test_run_job__bad_input_exits_2_and_runs_nothing(args, message):
    with pytest.raises(CommandError, match=message) as info:
        call_command("run_job", *args)
    assert info.value.returncode == 2
    assert JobRun.objects.count() == 0


def test_run_job__queue_records_a_queued_run():
    output = run_command("run_job", "devkit.demo_job", "items=2", "--queue")
    run = JobRun.objects.get()
    assert run.status == "queued" and f"run #{run.pk}" in output


def test_list_jobs__shows_every_job_with_cron():
    output = run_command("list_jobs")
    assert "jobs.prune_history" in output and "30 3 * * *" in output
    assert "devkit.demo_job" in output and "on demand" in output


def test_sync_schedules__idempotent_and_removes_only_its_own():
    Schedule.objects.create(name="someone-elses", func="math.floor", args="1", schedule_type="D")
    Schedule.objects.create(
        name="jobs.retired_job",
        func="jobs.runner.run_scheduled_job",
        schedule_type="C",
        cron="0 1 * * *",
    )
    first = sync_schedules()
    second = sync_schedules()

    assert "jobs.retired_job" in first["deleted"]
    assert second == {"created": [], "updated": [], "deleted": []}
    names = set(Schedule.objects.values_list("name", flat=True))
    assert {"someone-elses", "jobs.prune_history", "jobs.deliver_notifications"} <= names
    prune = Schedule.objects.get(name="jobs.prune_history")
    assert (prune.cron, prune.cluster) == ("30 3 * * *", "default")
    assert prune.next_run.hour == 3 and prune.next_run.minute == 30  # UTC


def test_health__an_overdue_schedule_fails_its_check_but_is_no_503(admin_client, fresh_schedules):
    """The web process can serve without a scheduler: the check fails, the watchdog
    alerts, the load balancer keeps it (503 is for the database only)."""
    ok = admin_client.get("/health/").json()
    assert ok["checks"]["schedules"]["ok"] is True

    Schedule.objects.filter(name="jobs.prune_history").update(
        next_run=timezone.now() - timedelta(hours=2)
    )
    response = admin_client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["schedules"]["state"] == "fail"
    assert "jobs.prune_history" in body["checks"]["schedules"]["detail"]


def test_health__latest_failed_run_is_unhealthy_until_a_success(admin_client):
    from jobs.runner import run_job_now

    run_job_now("devkit.demo_job", kwargs={"fail": True})
    failures = admin_client.get("/health/").json()["checks"]["failures_24h"]
    assert failures["ok"] is False and "devkit.demo_job" in failures["detail"]

    run_job_now("devkit.demo_job", kwargs={"items": 1})
    failures = admin_client.get("/health/").json()["checks"]["failures_24h"]
    assert failures["ok"] is True and failures["detail"].startswith("1 failed run(s)")


def test_jobs_health__prints_one_line_per_check_and_fails_without_cluster():
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("jobs_health", stdout=out)
    assert info.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "database: OK"
    assert any(line.startswith("cluster: FAIL no qcluster running") for line in lines)


@pytest.fixture
def staff_without_run(client):
    client.force_login(make_staff("viewer", "jobs.view_jobrun"))
    return client


@pytest.fixture
def operator(client):
    client.force_login(make_staff("operator", "jobs.view_jobrun", "jobs.run_job"))
    return client


def test_admin_run_now__forbidden_without_permission(staff_without_run):
    page = staff_without_run.get(reverse("admin:jobs_jobrun_overview"))
    assert page.status_code == 200 and b"devkit.demo_job" in page.content
    assert b"Run now" not in page.content
    url = reverse("admin:jobs_jobrun_run_now", args=["devkit.demo_job"])

    assert staff_without_run.get(url).status_code == 403
    response = staff_without_run.post(url)

    assert response.status_code == 403
    assert JobRun.objects.count() == 0


def test_admin_run_now__confirms_then_queues_run_recording_who_and_lands_on_it(operator):
    page = operator.get(reverse("admin:jobs_jobrun_overview"))
    run_now_url = reverse("admin:jobs_jobrun_run_now", args=["devkit.demo_job"])
    assert run_now_url.encode() in page.content

    confirm = operator.get(run_now_url)
    assert confirm.status_code == 200 and b"Yes, run devkit.demo_job now" in confirm.content
    assert b"<code>items=1000</code>" in confirm.content
    assert JobRun.objects.count() == 0  # GET changes nothing

    response = operator.post(reverse("admin:jobs_jobrun_run_now", args=["devkit.demo_job"]))

    run = JobRun.objects.get()
    assert (run.trigger, run.triggered_by, run.status) == ("admin", "operator", "queued")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:jobs_jobrun_change", args=[run.pk])


def test_admin_retry__only_failed_runs(operator):
    from jobs.runner import run_job_now

    failed = run_job_now("devkit.demo_job", kwargs={"fail": True})
    ok = run_job_now("devkit.demo_job", kwargs={"items": 1})
    JobRun.objects.filter(parent=failed).delete()  # drop the automatic retry
    url = reverse("admin:jobs_jobrun_changelist")

    selection = {"action": "retry_runs", "_selected_action": [failed.pk, ok.pk]}

    confirm = operator.post(url, selection)
    assert confirm.status_code == 200 and b'id="confirm-retry"' in confirm.content
    assert b"1 selected run(s) not failed or unknown" in confirm.content
    assert not JobRun.objects.filter(parent=failed).exists()  # nothing before confirming

    response = operator.post(url, {**selection, "post": "yes"})

    retry = JobRun.objects.get(parent=failed)
    assert response["Location"] == reverse("admin:jobs_jobrun_change", args=[retry.pk])
    assert (retry.trigger, retry.triggered_by, retry.kwargs) == (
        "admin",
        "operator",
        {"fail": True},
    )
    assert not JobRun.objects.filter(parent=ok).exists()


def failed_runs(*kwargs_list: dict) -> list[JobRun]:
    """Failed runs as a month of failed nights leaves them (rows, not work: only the retry runs)."""
    rows = [
        JobRun(
            job="devkit.demo_job",
            trigger="schedule",
            status="failed",
            kwargs=kwargs,
            error="RuntimeError: demo_job asked to fail",
            finished_at=timezone.now(),
        )
        for kwargs in kwargs_list
    ]
    return JobRun.objects.bulk_create(rows)


def test_admin_retry__a_month_of_failures_of_one_job_and_arguments_is_one_retry(operator):
    month = failed_runs(*[{"fail": True}] * 30)
    other = failed_runs({"fail": True, "items": 2})
    url = reverse("admin:jobs_jobrun_changelist")
    selection = {"action": "retry_runs", "_selected_action": [r.pk for r in month + other]}

    confirm = operator.post(url, selection)
    assert b"Yes, retry 2 run(s)" in confirm.content
    assert b"29 selected failed run(s) have the job and arguments of a newer" in confirm.content

    operator.post(url, {**selection, "post": "yes"})

    retries = JobRun.objects.filter(parent__isnull=False, trigger="admin")
    assert sorted((r.parent_id, r.kwargs) for r in retries) == [
        (month[-1].pk, {"fail": True}),  # the newest of the month is the parent
        (other[0].pk, {"fail": True, "items": 2}),
    ]


def test_admin_retry__the_confirmation_lists_at_most_100_runs(operator):
    runs = failed_runs(*[{"fail": True, "items": i} for i in range(150)])
    url = reverse("admin:jobs_jobrun_changelist")
    selection = {"action": "retry_runs", "_selected_action": [r.pk for r in runs]}

    confirm = operator.post(url, selection)

    assert b"Yes, retry 150 run(s)" in confirm.content
    assert confirm.content.count(b"demo_job asked to fail") == 100
    assert b"... and 50 more" in confirm.content
    assert not JobRun.objects.filter(trigger="admin").exists()


def test_admin_run_page__shows_readable_result_and_error(operator):
    from jobs.runner import run_job_now

    run = run_job_now("devkit.demo_job", kwargs={"fail": True})
    page = operator.get(reverse("admin:jobs_jobrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert b"RuntimeError: demo_job asked to fail" in page.content
    assert b"retry_run_id" in page.content
