"""Who may run a job: `jobs.run_job` plus every permission the job declares.

Retry and Run now ask for the same permissions as the job's own admin action.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devkit.management.commands.demo import demo_modules
from exchanges.models import Exchange, Participant
from jobs.admin.permissions import can_run_job, required_permissions
from jobs.models import JobRun
from jobs.registry import all_jobs
from tests.admin_helpers import make_staff, post_action, staff_client

pytestmark = pytest.mark.django_db

RUN = ("jobs", "run_job")
VIEW_RUNS = ("jobs", "view_jobrun")
CHANGE_EXCHANGE = ("exchanges", "change_exchange")


@pytest.fixture
def failed_match():
    exchange = Exchange.objects.create(
        name="Office",
        organizer_email="o@example.com",
        exchange_at=timezone.now() + timedelta(days=9),
    )
    for name in "AB":
        Participant.objects.create(exchange=exchange, name=name, email=f"{name}@example.com")
    run = JobRun.objects.create(
        job="exchanges.match_exchange", status="failed", kwargs={"exchange_id": exchange.pk}
    )
    return exchange, run


def test_every_declared_permission_exists():
    declared = {
        perm
        for spec in all_jobs()
        for perm in (*spec.permissions, *(p for _, ps in spec.argument_permissions for p in ps))
    }
    existing = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    assert declared and declared <= existing, declared - existing


def test_required_permissions__follow_the_apps_actions():
    assert required_permissions("exchanges.match_exchange") == (
        "jobs.run_job",
        "exchanges.change_exchange",
    )
    assert required_permissions("loyalty.expire_points") == (
        "jobs.run_job",
        "loyalty.change_loyaltycard",
    )
    assert required_permissions("exchanges.purge_completed")[1:] == ("exchanges.delete_exchange",)
    by_collection = "bibliotheca.import_purchase_records_by_collection"
    assert required_permissions(by_collection, {"force_reimport": False}) == ("jobs.run_job",)
    assert required_permissions(by_collection, {"force_reimport": True})[1:] == (
        "bibliotheca.change_collection",
    )


def test_retry__run_only_user_cannot_replay_a_draw(client, failed_match):
    exchange, run = failed_match
    staff_client(client, "runner", [RUN, VIEW_RUNS])
    url = reverse("admin:jobs_jobrun_changelist")
    response = post_action(client, url, "retry_runs", run.pk, confirm=True)
    exchange.refresh_from_db()
    assert response.status_code == 302
    assert JobRun.objects.count() == 1  # nothing queued
    assert exchange.state == Exchange.State.DRAFT
    messages = [m.message for m in response.wsgi_request._messages]
    assert messages == ["Not retried: you lack exchanges.change_exchange."]


def test_retry__user_with_the_change_permission_may(client, failed_match):
    _, run = failed_match
    staff_client(client, "matcher", [RUN, VIEW_RUNS, CHANGE_EXCHANGE])
    url = reverse("admin:jobs_jobrun_changelist")
    response = post_action(client, url, "retry_runs", run.pk, confirm=True)
    retry = JobRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302
    assert (retry.job, retry.parent_id, retry.triggered_by) == (
        "exchanges.match_exchange",
        run.pk,
        "matcher",
    )


def test_run_now__nightly_expiration_needs_the_change_permission():
    url = reverse("admin:jobs_jobrun_run_now", args=["loyalty.expire_points"])
    runner = staff_client(Client(), "runner", [RUN, VIEW_RUNS])
    changer = staff_client(Client(), "changer", [RUN, VIEW_RUNS, ("loyalty", "change_loyaltycard")])
    overview = reverse("admin:jobs_jobrun_overview")
    assert url not in runner.get(overview).content.decode()
    assert url in changer.get(overview).content.decode()
    assert (runner.get(url).status_code, runner.post(url).status_code) == (403, 403)
    assert JobRun.objects.count() == 0
    assert changer.post(url).status_code == 302
    assert JobRun.objects.get().job == "loyalty.expire_points"


def test_can_run_job__unknown_job_and_inactive_user_are_refused(django_user_model):
    boss = django_user_model.objects.create_superuser("boss", password="pw")
    assert can_run_job(boss, "loyalty.expire_points")
    assert not can_run_job(boss, "os.system")
    boss.is_active = False
    assert not can_run_job(boss, "loyalty.expire_points")


def test_can_run_job__needs_run_job_and_the_jobs_own_permissions():
    runner = make_staff("runner", "jobs.run_job")
    cardkeeper = make_staff("cardkeeper", "jobs.run_job", "loyalty.change_loyaltycard")
    no_run = make_staff("no_run", "loyalty.change_loyaltycard", "exchanges.delete_exchange")

    assert can_run_job(runner, "loyalty.sync_wallet_passes")  # declares none
    assert not can_run_job(runner, "loyalty.expire_points")  # voids points: change card
    assert can_run_job(cardkeeper, "loyalty.expire_points")
    assert not can_run_job(cardkeeper, "exchanges.purge_completed")  # delete exchange
    assert not can_run_job(no_run, "exchanges.purge_completed")
    assert not can_run_job(cardkeeper, "no.such_job")


def test_demo__finds_every_apps_demo_module_without_a_list_in_the_core():
    modules = demo_modules()

    assert {"loyalty", "exchanges", "bibliotheca", "commerce"} <= set(modules)
    assert all(callable(module.run_demo) for module in modules.values())
