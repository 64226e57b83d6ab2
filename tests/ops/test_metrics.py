"""/metrics: Prometheus text read from the database at scrape time."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import JobRun, Lease, Notification

pytestmark = pytest.mark.django_db


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def run(status, duration=None, age_hours=0.0, job="devkit.demo_job"):
    created = timezone.now() - timedelta(hours=age_hours)
    return JobRun.objects.create(
        job=job, trigger="schedule", status=status, duration_seconds=duration, created_at=created
    )


def test_metrics__runs_durations_queue_outbox_and_leases(client):
    run("succeeded", 1.0)
    run("succeeded", 3.0)
    run("failed", 2.0)
    run("running")
    run("succeeded", 100.0, age_hours=25)  # outside the 24 h window
    OrmQ.objects.create(key="notifications", payload="x", lock=timezone.now())
    Notification.objects.create(
        channel="sms", recipient="+1", template="t", body="b", dedup_key="d", status="dead"
    )
    now = timezone.now()
    Lease.objects.create(
        key="job:devkit.demo_job",
        owner="run:1",
        acquired_at=now,
        expires_at=now + timedelta(minutes=1),
    )
    Lease.objects.create(
        key="job:old", owner="run:0", acquired_at=now, expires_at=now - timedelta(minutes=1)
    )

    m = scrape(client)

    demo = (("job", "devkit.demo_job"),)
    assert m[("jobs_runs", (("job", "devkit.demo_job"), ("status", "succeeded")))] == 2
    assert m[("jobs_runs", (("job", "devkit.demo_job"), ("status", "failed")))] == 1
    assert m[("jobs_run_duration_seconds_count", demo)] == 3
    assert m[("jobs_run_duration_seconds_sum", demo)] == 6.0
    assert m[("jobs_run_duration_p50_seconds", demo)] == 2.0
    assert m[("jobs_runs_running", demo)] == 1
    assert m[("jobs_queue_depth", (("cluster", "notifications"),))] == 1
    assert m[("jobs_queue_depth", (("cluster", "default"),))] == 0
    assert m[("jobs_outbox_notifications", (("status", "dead"),))] == 1
    assert m[("jobs_outbox_notifications", (("status", "sent"),))] == 0
    assert m[("jobs_lease_held", (("key", "job:devkit.demo_job"),))] == 1
    assert ("jobs_lease_held", (("key", "job:old"),)) not in m


def test_metrics__empty_database_still_exposes_queue_and_outbox_families(client):
    text = client.get("/metrics").content.decode()
    assert "# TYPE jobs_runs gauge" in text
    assert 'jobs_queue_depth{cluster="apply"} 0.0' in text
    assert 'jobs_outbox_notifications{status="pending"} 0.0' in text


def test_metrics__in_production__anonymous_refused_without_a_word(client, settings):
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = "s3cret-token"
    run("failed", 1.0, job="loyalty.expire_points")

    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong"},
        {"HTTP_AUTHORIZATION": "s3cret-token"},
    ):
        response = client.get("/metrics", **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"loyalty" not in response.content and b"jobs_" not in response.content

    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert scraped.status_code == 200 and b'job="loyalty.expire_points"' in scraped.content


def test_metrics__in_production__a_staff_session_may_read(admin_client, client, settings):
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = ""  # no token configured: staff only, never anyone
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert admin_client.get("/metrics").status_code == 200
