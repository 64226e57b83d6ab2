"""Take the README's screenshots from the data `make demo` left behind.

Run after `make demo`, on the same database:

    DATABASE_URL=$(cat .run/database_url) .venv/bin/python scripts/demo_screenshots.py docs/screenshots

It starts every cluster and the admin (runserver --insecure) on free ports, logs in
as a throwaway superuser in Debian's chromium (Playwright), and saves the dashboard, a
run while it runs, and the alerts page. Everything it started is stopped at the end.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_dev")  # the demo job is devkit's
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop, our ORM
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from devkit.devservers import free_port  # noqa: E402
from devkit.waiting import wait_for_run  # noqa: E402
from jobs.queue.clusters import start_clusters, stop_clusters  # noqa: E402
from jobs.runner import enqueue_job  # noqa: E402

USER, PASSWORD = "screenshots", "screenshots-only-password"


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    User.objects.filter(username=USER).delete()
    User.objects.create_superuser(USER, password=PASSWORD)
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--insecure", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clusters = start_clusters()  # every queue consumed, as the health block checks
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
            )
            page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
            for _ in range(100):  # the admin answers once runserver is up
                try:
                    page.goto(f"{base}/admin/login/")
                    break
                except Exception:
                    time.sleep(0.2)
            page.fill("#id_username", USER)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/admin/")

            slow = enqueue_job(
                "devkit.demo_job", kwargs={"items": 500, "step_seconds": 1.5}, trigger="command"
            )
            page.goto(f"{base}/admin/jobs/jobrun/{slow.pk}/change/")
            page.wait_for_function(
                "document.querySelector('#run-progress .progress-text').textContent.includes('of 500')"
                " && document.querySelector('#run-status').textContent === 'running'",
                timeout=60_000,
            )
            page.screenshot(path=str(folder / "run-page.png"), full_page=True)
            wait_for_run(slow.pk, timeout_seconds=60)
            # The page reloads itself once the run finishes: let it, then move on.
            page.wait_for_selector("#run-status.status-succeeded", timeout=30_000)
            page.wait_for_load_state("load")

            page.goto(f"{base}/admin/jobs/jobrun/overview/")
            page.screenshot(path=str(folder / "dashboard.png"), full_page=True)
            # The alerts list is wide: without the admin's navigation column.
            page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
            page.goto(f"{base}/admin/jobs/alert/")
            page.screenshot(path=str(folder / "alerts.png"), full_page=True)
            browser.close()
    finally:
        stop_clusters(clusters)
        web.terminate()
        web.wait(timeout=10)
        User.objects.filter(username=USER).delete()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
