"""Alerts on real qclusters, to a real webhook receiver and a real SMTP server."""

import json
import socket
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule

from devkit.waiting import wait_for_run, wait_until
from jobs.models import Alert, JobRun, Notification
from jobs.queue.clusters import stop_clusters
from jobs.runner import enqueue_job
from tests.reliability.smtp_sink import SmtpSink

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_schedules"),  # the missed slot is the test's only one
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_alerts__failed_for_good_then_resolved_then_a_missed_slot(qcluster, httpserver, settings):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    hook = httpserver.url_for("/hook")
    port = free_port()
    env = {
        "DEBUG": "1",  # the receiver is plain http on loopback
        "JOBS_ALERT_WEBHOOK_URL": hook,
        "JOBS_ALERT_EMAILS": "oncall@example.com",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
    }
    posts = lambda: [json.loads(r.get_data()) for r, _ in httpserver.log]  # noqa: E731
    with SmtpSink(port) as sink:
        default, _ = qcluster.start(["default", "notifications"], env=env)

        # A job that fails for good: one webhook POST and one email.
        failed = enqueue_job("tests.maybe_fail", kwargs={"fail": True}, trigger="command")
        assert wait_for_run(failed.pk, timeout_seconds=60).status == "failed"
        wait_until(lambda: posts() and sink.messages, timeout_seconds=60, what="the alert")
        (alert,) = posts()
        assert {k: alert[k] for k in ("event", "job", "run_id", "status", "reason")} == {
            "event": "opened",
            "job": "tests.maybe_fail",
            "run_id": failed.pk,
            "status": "failed",
            "reason": "RuntimeError: asked to fail",
        }
        assert alert["text"].startswith(":rotating_light: tests.maybe_fail: failed for good")
        assert alert["url"].endswith(f"/admin/jobs/jobrun/{failed.pk}/change/")
        ((recipients, mail),) = sink.messages
        assert recipients == ["oncall@example.com"]
        assert "Subject: [jobs] tests.maybe_fail: failed for good" in mail

        # Its next success: "resolved", by both channels.
        ok = enqueue_job("tests.maybe_fail", trigger="command")
        assert wait_for_run(ok.pk, timeout_seconds=60).status == "succeeded"
        wait_until(lambda: len(posts()) == 2 and len(sink.messages) == 2, timeout_seconds=60,
                   what="the resolution")  # fmt: skip
        resolved = posts()[1]
        assert (resolved["event"], resolved["status"], resolved["run_id"]) == (
            "resolved",
            "resolved",
            ok.pk,
        )
        assert "Subject: [jobs] resolved: tests.maybe_fail" in sink.messages[1][1]

        # The default cluster goes down and its every-minute slot passes the grace: the
        # web's /health/ watchdog tells, the notifications cluster delivers.
        stop_clusters([default])
        Schedule.objects.filter(name="tests.tick").update(
            next_run=timezone.now() - timedelta(minutes=10)
        )
        settings.JOBS_ALERT_WATCH_SECONDS = 0
        settings.JOBS_ALERT_WEBHOOK_URL = hook  # the web process has the clusters' settings
        settings.JOBS_ALERT_EMAILS = ("oncall@example.com",)
        assert Client().get("/health/").status_code == 200
        wait_until(lambda: len(posts()) == 3, timeout_seconds=60, what="the missed alert")
        missed = posts()[2]
        assert (missed["event"], missed["job"], missed["status"], missed["run_id"]) == (
            "opened",
            "tests.tick",
            "missed",
            None,
        )
        assert "has not started (is the default cluster running?)" in missed["reason"]
        wait_until(lambda: len(sink.messages) == 3, timeout_seconds=30, what="the missed email")
    assert Alert.objects.filter(job="tests.tick", kind="missed", resolved_at=None).count() == 1
    assert JobRun.objects.filter(job="tests.maybe_fail").count() == 2


def test_every_cluster_down__health_watchdog_tells_and_the_web_process_delivers(
    httpserver, settings
):
    """No cluster at all: /health/ opens the missed alert, and since no cluster delivers it,
    the web process posts it itself (a helper thread, the outbox's own claim)."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    settings.DEBUG = True
    settings.JOBS_ALERT_WEBHOOK_URL = httpserver.url_for("/hook")
    settings.JOBS_ALERT_EMAILS = ()
    settings.JOBS_ALERT_WATCH_SECONDS = 0
    settings.JOBS_ALERT_FALLBACK_SECONDS = 0  # deliver what waits at all (the default: 120 s)
    Schedule.objects.filter(name="tests.tick").update(
        next_run=timezone.now() - timedelta(minutes=10)
    )

    response = Client().get("/health/")

    assert response.status_code == 200 and response.json()["status"] == "degraded"
    wait_until(lambda: httpserver.log, timeout_seconds=30, what="the web process's delivery")
    (request, _), *_ = httpserver.log
    body = request.get_json()
    assert (body["job"], body["status"]) == ("tests.tick", "missed")
    wait_until(
        lambda: not Notification.objects.filter(status__in=["pending", "sending"]).exists(),
        timeout_seconds=10,
        what="the row marked sent",
    )
    assert Notification.objects.get(channel="webhook").status == "sent"
