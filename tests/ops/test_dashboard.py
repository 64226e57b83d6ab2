"""The jobs dashboard: figures from one query per kind, a chart per job, links into history."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from jobs.admin.charts import STATUS_COLOURS
from jobs.health.selectors import (
    job_overviews,
    job_run_stats,
    queue_depth_by_cluster,
    recent_runs_by_job,
)
from jobs.models import JobRun, Notification

pytestmark = pytest.mark.django_db


def make_run(job="devkit.demo_job", status="succeeded", duration=1.0, age_days=0.0, **fields):
    created = timezone.now() - timedelta(days=age_days)
    return JobRun.objects.create(
        job=job,
        trigger="command",
        status=status,
        duration_seconds=duration,
        created_at=created,
        finished_at=created,
        **fields,
    )


def test_job_run_stats__percentiles_of_finished_runs_in_one_query(django_assert_num_queries):
    for seconds in range(1, 11):
        make_run(duration=float(seconds), status="failed" if seconds == 10 else "succeeded")
    make_run(duration=500.0, age_days=8)  # outside the window
    make_run(status="skipped", duration=None)

    with django_assert_num_queries(1):
        stats = job_run_stats(since=timezone.now() - timedelta(days=7))

    row = stats["devkit.demo_job"]
    assert (row["runs"], row["succeeded"], row["failed"], row["finished"]) == (11, 9, 1, 10)
    assert row["p50_duration"] == pytest.approx(5.5)
    assert row["p95_duration"] == pytest.approx(9.55)
    assert row["total"] == pytest.approx(55.0)


def test_recent_runs_by_job__latest_n_per_job_oldest_first(django_assert_num_queries):
    runs = [make_run(duration=float(i), age_days=(40 - i) / 100) for i in range(40)]
    other = make_run(job="jobs.prune_history")

    with django_assert_num_queries(1):
        recent = recent_runs_by_job(["devkit.demo_job", "jobs.prune_history", "no.such"], limit=30)

    assert [p.id for p in recent["devkit.demo_job"]] == [r.pk for r in runs[10:]]
    assert [p.id for p in recent["jobs.prune_history"]] == [other.pk]
    assert "no.such" not in recent


def test_job_overviews__every_job_with_schedule_words_and_figures():
    make_run(duration=2.0)
    make_run(status="failed", duration=4.0)

    overviews = {o.spec.name: o for o in job_overviews()}

    assert overviews["jobs.prune_history"].schedule_words == "daily at 03:30 UTC"
    assert overviews["jobs.deliver_notifications"].schedule_words == "every minute"
    demo = overviews["devkit.demo_job"]
    assert (demo.runs_7d, demo.success_rate_7d, demo.p50_duration_7d) == (2, 50.0, 3.0)
    assert [p.status for p in demo.recent_runs] == ["succeeded", "failed"]


def test_queue_depth_by_cluster__counts_ormq_rows_per_cluster_zero_included():
    for key in ("default", "default", "apply"):
        OrmQ.objects.create(key=key, payload="x", lock=timezone.now())

    assert queue_depth_by_cluster() == {
        "default": 2,
        "notifications": 0,
        "apply": 1,
        "subscriptions": 0,
    }


def test_dashboard__shows_health_queues_dead_outbox_chart_and_filtered_links(operator):
    failed = make_run(status="failed", duration=0.5)
    make_run(duration=1.5)
    Notification.objects.create(
        channel="email",
        recipient="a@example.com",
        template="t",
        body="b",
        dedup_key="k1",
        status="dead",
    )

    page = operator.get(reverse("admin:jobs_jobrun_overview"))

    assert page.status_code == 200
    html = page.content.decode()
    # No cluster heartbeat in tests: a FAIL, but this process still takes traffic, as
    # /health/ says (the same word).
    assert 'class="jobs-health degraded"' in html and "<h2>Degraded" in html
    assert "FAIL</span>\n        cluster no qcluster running" in html
    assert "daily at 03:30 UTC" in html and "<code>30 3 * * *</code>" in html
    assert "?job=devkit.demo_job&amp;status=failed" in html and "1 failed" in html
    assert html.count('data-status="failed"') == 1 and html.count('data-status="succeeded"') == 1
    assert reverse("admin:jobs_jobrun_change", args=[failed.pk]) in html
    assert "queue default" in html and '?status__exact=dead">1</a>' in html
    assert 'class="button run-now"' in html


@pytest.mark.parametrize("status", list(JobRun.Status))
def test_status_colour__the_same_in_the_run_list_the_chart_and_the_legend(operator, status):
    make_run(status=status)
    colour = STATUS_COLOURS[status]

    runs = operator.get(reverse("admin:jobs_jobrun_changelist")).content.decode()
    dashboard = operator.get(reverse("admin:jobs_jobrun_overview")).content.decode()

    assert f'<strong style="color:{colour}">{status.label}</strong>' in runs
    assert f'fill="{colour}" data-status="{status}"' in dashboard
    assert f".status-{status} {{ color: {colour}; }}" in dashboard


def test_run_history__filtered_by_job_and_status_from_dashboard_links(operator):
    failed = make_run(status="failed")
    ok = make_run()
    make_run(job="jobs.prune_history", status="failed")

    page = operator.get(
        reverse("admin:jobs_jobrun_changelist") + "?job=devkit.demo_job&status=failed"
    )

    assert page.status_code == 200
    shown = [run.pk for run in page.context["cl"].result_list]
    assert shown == [failed.pk] and ok.pk not in shown


def test_admin_index__links_to_the_dashboard(operator, viewer_user, client):
    page = operator.get(reverse("admin:index"))
    assert b'id="jobs-dashboard-entry"' in page.content
    assert reverse("admin:jobs_jobrun_overview").encode() in page.content
