"""JOBS_SCHEDULES: a job's cron set or changed from settings (or env), validated first."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_q.models import Schedule

from jobs.queue.schedule_overrides import ScheduleOverrideError, schedule_overrides
from jobs.queue.schedules import sync_schedules
from tests.admin_helpers import staff_client
from tests.commands import run_command

pytestmark = pytest.mark.django_db

AUDIT = "commerce.cleanup_old_audit_logs"


def test_unscheduled_job__turned_on_from_settings(settings):
    sync_schedules()
    assert not Schedule.objects.filter(name=AUDIT).exists()  # not scheduled by default
    settings.JOBS_SCHEDULES = {AUDIT: "0 4 * * *"}

    result = sync_schedules()

    assert AUDIT in result["created"]
    schedule = Schedule.objects.get(name=AUDIT)
    assert (schedule.cron, schedule.cluster) == ("0 4 * * *", "default")
    assert schedule.next_run.hour == 4


def test_scheduled_job__cron_changed_then_turned_off(settings):
    sync_schedules()
    settings.JOBS_SCHEDULES = {"commerce.cleanup_expired_carts": "30 5 * * 1"}
    assert sync_schedules()["updated"] == ["commerce.cleanup_expired_carts"]
    assert Schedule.objects.get(name="commerce.cleanup_expired_carts").cron == "30 5 * * 1"

    settings.JOBS_SCHEDULES = {"commerce.cleanup_expired_carts": "off"}
    assert sync_schedules()["deleted"] == ["commerce.cleanup_expired_carts"]

    settings.JOBS_SCHEDULES = {}
    assert sync_schedules()["created"] == ["commerce.cleanup_expired_carts"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"commerce.nope": "0 4 * * *"}, "JOBS_SCHEDULES: unknown job 'commerce.nope' (known: "),
        ({AUDIT: "0 25 * * *"}, f"JOBS_SCHEDULES: {AUDIT}: '0 25 * * *' is not a cron expression"),
        ({AUDIT: 5}, f"JOBS_SCHEDULES: {AUDIT}: 5 is not a cron expression"),
        (["x"], "JOBS_SCHEDULES must be a dict of job name -> cron"),
    ],
)
def test_bad_override__sync_schedules_stops_with_one_line_nothing_changed(settings, value, message):
    sync_schedules()
    before = list(Schedule.objects.order_by("name").values_list("name", "cron", "next_run"))
    settings.JOBS_SCHEDULES = value

    with pytest.raises(CommandError) as caught:
        run_command("sync_schedules")

    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert caught.value.returncode == 2
    assert list(Schedule.objects.order_by("name").values_list("name", "cron", "next_run")) == before


def test_environment_variable__name_equals_cron_separated_by_semicolons(monkeypatch):
    monkeypatch.setenv("JOBS_SCHEDULES", f"{AUDIT}=0 4 * * * ; commerce.cleanup_expired_carts=off")
    assert schedule_overrides() == {AUDIT: "0 4 * * *", "commerce.cleanup_expired_carts": None}
    monkeypatch.setenv("JOBS_SCHEDULES", f"{AUDIT} 0 4 * * *")
    with pytest.raises(ScheduleOverrideError, match="is not NAME=CRON"):
        schedule_overrides()


def test_settings_win_over_the_environment(settings, monkeypatch):
    monkeypatch.setenv("JOBS_SCHEDULES", f"{AUDIT}=0 1 * * *")
    settings.JOBS_SCHEDULES = {AUDIT: "0 2 * * *"}
    assert schedule_overrides() == {AUDIT: "0 2 * * *"}


def test_list_jobs__shows_the_cron_in_effect_and_where_it_comes_from(settings):
    settings.JOBS_SCHEDULES = {AUDIT: "0 4 * * *"}
    line = next(ln for ln in run_command("list_jobs").splitlines() if ln.startswith(AUDIT))
    assert "0 4 * * *" in line and line.endswith("(schedule from JOBS_SCHEDULES)")
    settings.JOBS_SCHEDULES = {AUDIT: "bad"}
    with pytest.raises(CommandError, match="is not a cron expression"):
        run_command("list_jobs")


def test_dashboard__shows_the_cron_from_settings(client, settings):
    settings.JOBS_SCHEDULES = {AUDIT: "0 4 * * *"}
    staff_client(client, "viewer", [("jobs", "view_jobrun")])
    page = client.get(reverse("admin:jobs_jobrun_overview")).content.decode()
    row = page[page.index(f'data-job="{AUDIT}"') :][:1500]
    assert "<code>0 4 * * *</code> (JOBS_SCHEDULES)" in row


def test_migrate_with_a_bad_override__stops_with_the_one_line(settings):
    settings.JOBS_SCHEDULES = {"nope": "0 4 * * *"}
    with pytest.raises(CommandError, match="^JOBS_SCHEDULES: unknown job 'nope'") as caught:
        call_command("migrate", verbosity=0, interactive=False)
    assert caught.value.returncode == 2
