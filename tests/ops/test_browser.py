"""The operator's journey in a real browser (Playwright + Debian's chromium) on a real qcluster.

Skips, saying why, when playwright or /usr/bin/chromium is missing (`make test` installs
chromium first when it can: scripts/ensure_chromium.sh). Set JOBS_E2E_SCREENSHOTS=docs/screenshots
to refresh the screenshots the docs show.
"""

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from devkit.waiting import wait_for_run
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job, run_job_now
from tests.admin_helpers import PASSWORD, make_staff

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.e2e

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: browser tests need Debian's chromium "
            "(run scripts/ensure_chromium.sh as root, or apt-get install chromium)"
        )
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("JOBS_E2E_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(browser, live_server, username: str):
    page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def seed_history() -> None:
    """A week of runs so the dashboard's figures and charts have something to show."""
    now = timezone.now()
    shapes = {
        "jobs.deliver_notifications": [0.2, 0.3, 0.25, 0.4, 1.6, 0.3, 0.2, 0.35],
        "jobs.prune_history": [4.0, 4.2, 3.9, 11.0, 4.1, 4.4],
        "devkit.demo_job": [0.8, 1.1, 0.9, 2.5, 1.0],
    }
    rows = []
    for job, durations in shapes.items():
        for index, seconds in enumerate(durations * 3):
            created = now - timedelta(hours=6 * (len(durations) * 3 - index))
            failed = index % 7 == 3
            rows.append(
                JobRun(
                    job=job,
                    trigger="schedule",
                    status="failed" if failed else "succeeded",
                    error="ConnectionError: smtp.example.com refused" if failed else "",
                    duration_seconds=seconds,
                    created_at=created,
                    started_at=created,
                    finished_at=created + timedelta(seconds=seconds),
                )
            )
    JobRun.objects.bulk_create(rows)


def test_operator_journey__dashboard_run_now_progress_retry_requeue(
    browser, live_server, qcluster, quiet_scheduler, screenshots
):
    """quiet_scheduler: the cluster up at 03:30 UTC would add a prune run to its chart."""
    make_staff("operator", "view_jobrun", "run_job", "view_notification", "change_notification")
    seed_history()
    failed = run_job_now("devkit.demo_job", kwargs={"fail": True}, triggered_by="cli")
    dead = Notification.objects.create(
        channel="email",
        recipient="ops@example.com",
        template="devkit/notifications/demo_result",
        body="b",
        dedup_key="browser:dead",
        status="dead",
        attempts=4,
        last_error="SMTPServerDisconnected",
    )
    qcluster.start(["default"])
    page = log_in(browser, live_server, "operator")

    # The admin index leads to the dashboard.
    page.click("#jobs-dashboard-entry a.button")
    page.wait_for_selector("#jobs-overview")
    row = page.locator('tr[data-job="jobs.prune_history"]')
    assert "daily at 03:30 UTC" in row.inner_text()
    assert row.locator("svg.run-chart rect").count() == 18
    assert page.locator("#dead-outbox .value").inner_text() == "1"

    # Run now: a confirmation page, then the run it created, refreshed until it finishes.
    page.click('tr[data-job="devkit.demo_job"] a.run-now')
    page.wait_for_selector("#confirm-run-now")
    assert JobRun.objects.filter(trigger="admin").count() == 0
    page.click("#confirm-run-now")
    page.wait_for_url(re.compile(r"/admin/jobs/jobrun/\d+/change/$"))
    run = JobRun.objects.get(trigger="admin")
    assert run.triggered_by == "operator" and f"/{run.pk}/change/" in page.url
    page.wait_for_selector("#run-status.status-succeeded", timeout=40_000)  # no manual reload
    assert "1000 of 1000 items" in page.locator("#run-progress").inner_text()

    # A slower run: the bar moves while we watch.
    slow = enqueue_job(
        "devkit.demo_job", kwargs={"items": 500, "step_seconds": 1.5}, trigger="command"
    )
    page.goto(f"{live_server.url}{reverse('admin:jobs_jobrun_change', args=[slow.pk])}")
    page.wait_for_function(
        "document.querySelector('#run-progress .progress-text').textContent.includes('of 500')"
        " && document.querySelector('#run-status').textContent === 'running'"
    )
    page.screenshot(path=str(screenshots / "run-page.png"), full_page=True)
    page.wait_for_selector("#run-status.status-succeeded", timeout=40_000)
    assert wait_for_run(slow.pk, timeout_seconds=5).status == "succeeded"

    # The dashboard, now with the runs above.
    page.goto(f"{live_server.url}{reverse('admin:jobs_jobrun_overview')}")
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

    # Retry the failed run: filtered history, action, confirmation, land on the new run.
    page.goto(
        f"{live_server.url}{reverse('admin:jobs_jobrun_changelist')}?job=devkit.demo_job&status=failed"
    )
    page.check(f'input.action-select[value="{failed.pk}"]')
    page.select_option("select[name=action]", "retry_runs")
    page.click("button[name=index]")
    page.wait_for_selector("#confirm-retry")
    page.click("#confirm-retry")
    page.wait_for_url(re.compile(r"/admin/jobs/jobrun/\d+/change/$"))
    retry = JobRun.objects.get(parent=failed, trigger="admin")
    assert f"/{retry.pk}/change/" in page.url and retry.triggered_by == "operator"

    # Requeue the dead notification.
    page.goto(
        f"{live_server.url}{reverse('admin:jobs_notification_changelist')}?status__exact=dead"
    )
    page.check(f'input.action-select[value="{dead.pk}"]')
    page.select_option("select[name=action]", "requeue")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert "Requeued 1 notification(s)" in page.locator("ul.messagelist").inner_text()
    dead.refresh_from_db()
    assert (dead.status, dead.requeued_by) == ("pending", "operator")


def test_viewer_without_permission__sees_no_run_now_and_gets_403(
    browser, live_server, transactional_db
):
    make_staff("viewer", "view_jobrun")
    page = log_in(browser, live_server, "viewer")

    page.goto(f"{live_server.url}{reverse('admin:jobs_jobrun_overview')}")
    assert page.locator("#jobs-overview tbody tr").count() >= 3
    assert page.locator("a.run-now").count() == 0

    response = page.goto(
        f"{live_server.url}{reverse('admin:jobs_jobrun_run_now', args=['devkit.demo_job'])}"
    )
    assert response.status == 403
    assert JobRun.objects.count() == 0
