"""Alerts: once per job and problem, counted in a storm, resolved by the next success,
sent by email and webhook through the outbox, per the job's channels."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule

from jobs.models import Alert, JobRun, Notification
from jobs.outbox.alert_webhook import webhook_url_problem
from jobs.outbox.alerts import alert_channels, deliver_stranded_alerts, scan_alerts
from jobs.outbox.notifications import deliver_due_notifications
from jobs.runner import run_scheduled_job

# scan_alerts() runs the watchdog over the schedules too: they must be freshly synced.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_schedules")]

WEBHOOK = "https://hooks.example.com/services/T0/B0/secret"


@pytest.fixture(autouse=True)
def alert_settings(settings):
    settings.JOBS_ALERT_EMAILS = ("oncall@example.com",)
    settings.JOBS_ALERT_WEBHOOK_URL = WEBHOOK
    settings.JOBS_ALERT_BASE_URL = "https://jobs.example.com"
    return settings


def messages(**filters):
    return Notification.objects.filter(template="jobs/notifications/alert", **filters)


def webhook_bodies() -> list[dict]:
    return [json.loads(n.body) for n in messages(channel="webhook").order_by("id")]


def failed_runs(job: str, count: int, **fields) -> list[JobRun]:
    now = timezone.now()
    return JobRun.objects.bulk_create(
        JobRun(
            job=job,
            trigger="schedule",
            status="failed",
            error=f"RuntimeError: boom {n}\nmore",
            result={"retries_exhausted": True},
            finished_at=now,
            **fields,
        )
        for n in range(count)
    )


def test_failure_for_good__one_alert_one_email_one_webhook(run_job_in_process):
    run = run_job_in_process("tests.permanent_no_retry")

    alert = Alert.objects.get()
    assert (alert.job, alert.kind, alert.count, alert.first_run_id) == (
        "tests.permanent_no_retry",
        "failed",
        1,
        run.pk,
    )
    assert alert.reason == "PermanentJobError: account closed"
    email = messages(channel="email").get()
    assert email.recipient == "oncall@example.com"
    assert email.subject == "[jobs] tests.permanent_no_retry: failed for good"
    assert f"https://jobs.example.com/admin/jobs/jobrun/{run.pk}/change/" in email.body
    (body,) = webhook_bodies()
    assert body["text"].startswith(":rotating_light: tests.permanent_no_retry: failed for good")
    assert {k: body[k] for k in ("event", "job", "run_id", "status", "reason", "count")} == {
        "event": "opened",
        "job": "tests.permanent_no_retry",
        "run_id": run.pk,
        "status": "failed",
        "reason": "PermanentJobError: account closed",
        "count": 1,
    }
    assert body["url"] == f"https://jobs.example.com/admin/jobs/jobrun/{run.pk}/change/"
    # The URL is the webhook's secret: never in a row.
    assert not Notification.objects.filter(body__contains="secret").exists()
    assert messages(channel="webhook").get().recipient == "alert-webhook"


def test_failure_that_queued_a_retry__no_alert(run_job_in_process):
    run = run_job_in_process("tests.always_fail")
    assert "retry_run_id" in run.result
    assert scan_alerts()["opened"] == 0
    assert not Alert.objects.exists() and not messages().exists()


def test_storm__100_failures_are_one_alert_with_a_count_then_resolved_once(run_job_in_process):
    failed_runs("devkit.demo_job", 100)

    assert scan_alerts()["opened"] == 1
    alert = Alert.objects.get()
    assert alert.count == 100
    assert messages(channel="email").get().subject == (
        "[jobs] devkit.demo_job: failed for good (100 times)"
    )
    failed_runs("devkit.demo_job", 1)
    assert scan_alerts() == {
        "alerts_grown": 1,
        "opened": 0,
        "repeated": 0,
        "resolved": 0,
        "messages": 0,
    }
    assert Alert.objects.get().count == 101
    assert messages().count() == 2  # still one email and one webhook

    ok = run_job_in_process("devkit.demo_job", kwargs={"items": 1})  # resolves at once

    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolved_by_id == ok.pk
    resolved = [b for b in webhook_bodies() if b["event"] == "resolved"]
    assert [(b["status"], b["run_id"], b["count"]) for b in resolved] == [("resolved", ok.pk, 101)]
    assert messages(channel="email", subject="[jobs] resolved: devkit.demo_job").exists()
    assert scan_alerts()["resolved"] == 0  # told once

    failed_runs("devkit.demo_job", 1)  # a new problem after the resolution: a new alert
    assert scan_alerts()["opened"] == 1
    assert Alert.objects.filter(resolved_at__isnull=True).count() == 1


def test_flagged_run__attention_alert(run_job_in_process):
    run = run_job_in_process("tests.flag_me", kwargs={"reason": "7 % of cards failed"})
    alert = Alert.objects.get()
    assert (alert.kind, alert.reason, alert.first_run_id) == (
        "attention",
        "7 % of cards failed",
        run.pk,
    )
    assert webhook_bodies()[0]["status"] == "attention"


def test_watchdog__slot_past_the_grace_with_no_run__one_missed_alert(settings):
    due = timezone.now() - timedelta(minutes=10)
    Schedule.objects.filter(name="jobs.reap_lost_runs").update(next_run=due)

    assert scan_alerts()["opened"] == 1
    assert scan_alerts()["opened"] == 0  # once per slot
    alert = Alert.objects.get()
    assert (alert.job, alert.kind, alert.count, alert.first_run) == (
        "jobs.reap_lost_runs",
        "missed",
        1,
        None,
    )
    assert "has not started (is the default cluster running?)" in alert.reason
    (body,) = webhook_bodies()
    assert body["run_id"] is None and body["url"].endswith(
        "/admin/jobs/jobrun/?job=jobs.reap_lost_runs"
    )

    # The cluster comes back and fires the slot late: recorded missed, counted, not re-sent.
    Schedule.objects.filter(name="jobs.reap_lost_runs").update(
        next_run=timezone.now() + timedelta(hours=1)
    )
    run_scheduled_job("jobs.reap_lost_runs", scheduled_for=due.isoformat())
    assert JobRun.objects.filter(job="jobs.reap_lost_runs", status="missed").exists()
    assert Alert.objects.get(job="jobs.reap_lost_runs").count == 2
    assert len(webhook_bodies()) == 1


def test_watchdog__cluster_down_again_or_still_down__counted_and_told_again(time_machine):
    """The default cluster misses the 10:00 slot (told), comes back and records it missed,
    then dies again before 10:25: that slot is counted into the open alert (not lost for
    the alert still open), once; a day later, still down, staff are told again."""
    time_machine.move_to("2026-12-07T10:06:00+00:00", tick=False)
    at = "2026-12-07T{}:00+00:00".format
    Schedule.objects.filter(name="jobs.reap_lost_runs").update(next_run=at("10:00"))
    assert scan_alerts()["opened"] == 1
    time_machine.move_to(at("10:20"), tick=False)  # back: fires the 10:00 slot late
    Schedule.objects.filter(name="jobs.reap_lost_runs").update(next_run=at("10:25"))
    run_scheduled_job("jobs.reap_lost_runs", scheduled_for=at("10:00"))
    assert Alert.objects.get().count == 2
    time_machine.move_to(at("10:31"), tick=False)  # down again since 10:22

    scan_alerts()
    scan_alerts()  # the same slot is counted once

    alert = Alert.objects.get()
    assert (alert.count, alert.resolved_at) == (3, None)
    assert len(webhook_bodies()) == 1  # within 24 h of telling: counted only
    time_machine.move_to("2026-12-08T10:31:00+00:00", tick=False)  # still down
    assert scan_alerts()["repeated"] == 1
    assert scan_alerts()["repeated"] == 0
    bodies = [b for b in webhook_bodies() if b["job"] == "jobs.reap_lost_runs"]
    assert [b["event"] for b in bodies] == ["opened", "repeated"]
    assert bodies[1]["text"].startswith(
        ":rotating_light: still: jobs.reap_lost_runs: scheduled slot missed (4 times)"
    )


def test_channels__registry_default_and_settings_override(settings, run_job_in_process):
    assert alert_channels("tests.fail_email_alerts_only") == "email"
    run_job_in_process("tests.fail_email_alerts_only")
    assert [n.channel for n in messages()] == ["email"]

    settings.JOBS_ALERT_CHANNELS = {"tests.permanent_no_retry": "webhook"}
    run_job_in_process("tests.permanent_no_retry")
    assert messages(channel="webhook").count() == 1
    assert messages(channel="email").count() == 1  # only the first job's

    settings.JOBS_ALERT_CHANNELS = {"tests.permanent_failure": "off"}
    run_job_in_process("tests.permanent_failure")
    assert Alert.objects.filter(job="tests.permanent_failure").exists()  # recorded, not sent
    assert messages().count() == 2


def test_bad_alert_settings_stop_start_up(settings):
    settings.JOBS_ALERT_CHANNELS = {"tests.nope": "email"}
    settings.JOBS_ALERT_WEBHOOK_URL = "http://hooks.example.com/x"
    settings.JOBS_ALERT_EMAILS = "oncall@example.com, not an address"
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "jobs.E203" in str(info.value) and "'not an address' is not an email" in str(info.value)
    assert "jobs.E201" in str(info.value) and "must start with https://" in str(info.value)
    assert "jobs.E202" in str(info.value) and "unknown job 'tests.nope'" in str(info.value)


@pytest.mark.parametrize(
    ("url", "debug", "problem"),
    [
        ("https://hooks.slack.com/services/T/B/x", False, None),
        ("http://127.0.0.1:8000/hook", False, "must start with https://"),
        ("http://127.0.0.1:8000/hook", True, None),
        ("https://user:pw@hooks.example.com/x", False, "user name or password"),
        ("https://hooks.example.com:99999/x", False, "not a valid URL"),
        ("https://hooks.example.com/a b", False, "without spaces"),
        ("file:///etc/passwd", True, "must start with https:// or http://"),
    ],
)
def test_webhook_url__checked_like_every_operator_typed_address(settings, url, debug, problem):
    settings.DEBUG = debug
    found = webhook_url_problem(url)
    assert (found is None) if problem is None else (problem in found)


def test_webhook_delivery__json_post__a_redirect_is_not_followed(settings, httpserver):
    settings.DEBUG = True  # a local receiver on plain http
    settings.JOBS_ALERT_WEBHOOK_URL = httpserver.url_for("/hook")
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    failed_runs("devkit.demo_job", 1)
    scan_alerts()
    Notification.objects.filter(channel="email").delete()

    assert deliver_due_notifications()["sent"] == 1
    (request, _), *_ = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json()["job"] == "devkit.demo_job"

    # A redirect elsewhere: not followed; the row retries, and its error names no URL.
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/elsewhere")}
    )
    run = JobRun.objects.create(
        job="devkit.demo_job", trigger="command", status="succeeded", finished_at=timezone.now()
    )
    assert run.pk and scan_alerts()["resolved"] == 1
    Notification.objects.filter(channel="email").delete()
    assert deliver_due_notifications()["retrying"] == 1
    assert [r.path for r, _ in httpserver.log] == ["/hook"]
    row = messages(channel="webhook", status="pending").get()
    assert row.last_error == "WebhookRefused: the alert webhook answered HTTP 302"


def test_fallback__alerts_no_cluster_delivered_are_sent_by_the_web_process(settings, httpserver):
    settings.DEBUG = True
    settings.JOBS_ALERT_WEBHOOK_URL = httpserver.url_for("/hook")
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    failed_runs("devkit.demo_job", 1)
    scan_alerts()
    assert deliver_stranded_alerts()["sent"] == 0  # just queued: the cluster's to send

    Notification.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    Notification.objects.create(
        channel="email",
        recipient="x@example.com",
        template="other",
        body="b",
        dedup_key="o",
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    assert deliver_stranded_alerts()["sent"] == 2  # the email and the webhook alert
    assert Notification.objects.get(dedup_key="o").status == "pending"  # not an alert
    assert len(httpserver.log) == 1


@override_settings(JOBS_ALERT_EMAILS=(), JOBS_ALERT_WEBHOOK_URL="")
def test_no_channels_configured__alerts_recorded_nothing_queued(run_job_in_process):
    run_job_in_process("tests.permanent_no_retry")
    assert Alert.objects.count() == 1 and not messages().exists()


@pytest.mark.parametrize(
    ("perms", "list_status", "page_status"),
    [
        ([("jobs", "view_alert")], 200, 200),  # view-only
        ([("jobs", "run_job"), ("jobs", "view_jobrun")], 403, 403),  # run-only
        ([], 403, 403),  # staff without permissions
    ],
)
def test_alert_admin__read_only_for_viewers_closed_to_others(
    client, perms, list_status, page_status
):
    from django.urls import reverse

    from tests.admin_helpers import staff_client

    failed_runs("devkit.demo_job", 3)
    scan_alerts()
    alert = Alert.objects.get()
    staff_client(client, "someone", perms)
    changelist = reverse("admin:jobs_alert_changelist")
    change = reverse("admin:jobs_alert_change", args=[alert.pk])

    assert client.get(changelist).status_code == list_status
    page = client.get(change)
    assert page.status_code == page_status
    if page_status == 200:
        body = page.content.decode()
        assert (
            "RuntimeError: boom 0" in body and f"/admin/jobs/jobrun/{alert.first_run_id}/" in body
        )
        assert "secret" not in body and 'name="_save"' not in body
        assert client.get(f"{changelist}?resolved_at__isempty=1").status_code == 200
    assert client.get(reverse("admin:jobs_alert_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:jobs_alert_delete", args=[alert.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert client.post(change, {"count": "1"}).status_code == 403
    assert Alert.objects.get().count == 3


def test_open_alert__a_problem_a_day_later_tells_staff_again(time_machine):
    """An alert whose job never succeeds (an on-demand job, a refused task) never goes
    quiet: a problem counted more than JOBS_ALERT_REPEAT_HOURS after staff were told
    tells them again, once."""
    time_machine.move_to("2026-12-07T02:00:00+00:00", tick=False)
    failed_runs("devkit.demo_job", 1)
    scan_alerts(watchdog=False)
    time_machine.move_to("2026-12-07T20:00:00+00:00", tick=False)
    failed_runs("devkit.demo_job", 1)
    assert scan_alerts(watchdog=False)["repeated"] == 0  # within 24 h: counted only
    time_machine.move_to("2026-12-08T03:00:00+00:00", tick=False)
    failed_runs("devkit.demo_job", 2)

    assert scan_alerts(watchdog=False)["repeated"] == 1
    assert scan_alerts(watchdog=False)["repeated"] == 0
    subjects = list(messages(channel="email").order_by("id").values_list("subject", flat=True))
    assert subjects == [
        "[jobs] devkit.demo_job: failed for good",
        "[jobs] still: devkit.demo_job: failed for good (4 times)",
    ]
    assert [b["event"] for b in webhook_bodies()] == ["opened", "repeated"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_scans__a_run_another_scan_holds_is_skipped_not_waited_for_or_counted_twice():
    """A scan holding run B (here: a lock held by another session, as a concurrent scan
    would) does not stop this scan, which counts A and C; B is counted once, later."""
    from tests.race import RowLocks

    a, b, c = failed_runs("devkit.demo_job", 3)
    with RowLocks("jobs_jobrun", [b.pk]):
        assert scan_alerts()["opened"] == 1  # at once: B is skipped, not waited for
        assert Alert.objects.get().count == 2
    assert scan_alerts()["alerts_grown"] == 1
    assert Alert.objects.get().count == 3
    assert messages().count() == 2  # the one email and one webhook of the opening
