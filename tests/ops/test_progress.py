"""Progress: report_progress -> run page bar + progress.json; CLI bar on a TTY, lines otherwise."""

import io
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from jobs.models import JobRun
from jobs.runs.progress import ProgressPrinter, describe_progress

pytestmark = pytest.mark.django_db


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("progress", "percent", "text"),
    [
        ({"done": 3, "total": 12, "unit": "days"}, 25.0, "3 of 12 days"),
        ({"done": 42, "total": None, "unit": "cards"}, None, "42 cards"),
        ({"done": 5, "total": 0}, None, "5 items"),
    ],
)
def test_describe_progress__words_and_percent(progress, percent, text):
    view = describe_progress(progress)
    assert (view.percent, view.text) == (percent, text)


def test_describe_progress__other_numbers_become_the_detail():
    view = describe_progress(
        {"done": 2, "total": 4, "unit": "days", "pages": 12, "current_day": "2026-01-02"}
    )
    assert (view.text, view.detail) == ("2 of 4 days", "pages 12")


def test_describe_progress__nothing_reported_is_none():
    assert describe_progress(None) is None and describe_progress({"note": "x"}) is None


def test_progress_printer__plain_lines_when_not_a_terminal():
    out = StringIO()
    printer = ProgressPrinter(label="job", stream=out)
    for done in (1, 1, 2):
        printer.update({"done": done, "total": 2, "unit": "days"})
    printer.finish()
    assert out.getvalue() == "job: 1 of 2 days (50%)\njob: 2 of 2 days (100%)\n"


def test_progress_printer__redraws_one_bar_on_a_terminal():
    out = FakeTerminal()
    printer = ProgressPrinter(label="job", stream=out, width=10)
    printer.update({"done": 1, "total": 4, "unit": "days"})
    printer.update({"done": 4, "total": 4, "unit": "days"})
    printer.finish()
    assert out.getvalue() == (
        "\rjob [##--------]  25.0% 1 of 4 days\033[K\rjob [##########] 100.0% 4 of 4 days\033[K\n"
    )


def test_run_job_command__prints_progress_lines_then_the_outcome():
    out = StringIO()
    call_command("run_job", "devkit.demo_job", "items=10", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[:2] == [
        "devkit.demo_job: 2 of 10 items (20%)",
        "devkit.demo_job: 4 of 10 items (40%)",
    ]
    assert lines[4] == "devkit.demo_job: 10 of 10 items (100%)"
    assert lines[5].startswith(f"devkit.demo_job run #{JobRun.objects.get().pk} succeeded")


def test_run_page__shows_the_bar_and_polls_while_live(operator):
    run = JobRun.objects.create(
        job="devkit.demo_job",
        trigger="admin",
        status="running",
        progress={"done": 3, "total": 12, "unit": "days"},
    )
    page = operator.get(reverse("admin:jobs_jobrun_change", args=[run.pk])).content.decode()

    progress_url = reverse("admin:jobs_jobrun_progress", args=[run.pk])
    assert f'data-url="{progress_url}" data-status="running" data-live="true"' in page
    assert 'style="width:25.0%"' in page and "3 of 12 days" in page
    assert "setTimeout(poll, 2000)" in page

    body = operator.get(progress_url).json()
    assert body["status"] == "running" and body["finished"] is False
    assert (body["percent"], body["text"]) == (25.0, "3 of 12 days")


def test_run_page__finished_run_is_not_polled_and_shows_its_chain(operator):
    parent = JobRun.objects.create(job="devkit.demo_job", trigger="admin", status="failed")
    run = JobRun.objects.create(
        job="devkit.demo_job", trigger="admin", status="succeeded", parent=parent
    )
    child = JobRun.objects.create(job="tests.tick", trigger="chain", status="queued", parent=run)

    page = operator.get(reverse("admin:jobs_jobrun_change", args=[run.pk])).content.decode()

    assert 'data-live="false"' in page
    assert f"#{parent.pk} devkit.demo_job</a>" in page
    assert f"#{child.pk} tests.tick</a> (chain," in page


def test_progress_json__needs_view_permission(client, django_user_model):
    run = JobRun.objects.create(job="devkit.demo_job", trigger="admin")
    user = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:jobs_jobrun_progress", args=[run.pk])).status_code == 403
