"""Who may run a job: `jobs.run_job` plus every permission the job declares."""

import pytest
from django.contrib.auth.models import Permission, User

from jobs.management.commands.demo import demo_modules
from jobs.permissions import can_run_job

pytestmark = pytest.mark.django_db


def user_with(*codenames: str) -> User:
    user = User.objects.create_user(f"u{User.objects.count()}", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh object: no cached permissions


def test_can_run_job__needs_run_job_and_the_jobs_own_permissions():
    runner = user_with("run_job")
    cardkeeper = user_with("run_job", "change_loyaltycard")
    no_run = user_with("change_loyaltycard", "delete_exchange")

    assert can_run_job(runner, "loyalty.sync_wallet_passes")  # declares none
    assert not can_run_job(runner, "loyalty.expire_points")  # voids points: change card
    assert can_run_job(cardkeeper, "loyalty.expire_points")
    assert not can_run_job(cardkeeper, "exchanges.purge_completed")  # delete exchange
    assert not can_run_job(no_run, "exchanges.purge_completed")
    assert not can_run_job(cardkeeper, "no.such_job")


def test_demo__finds_every_apps_demo_module_without_a_list_in_the_core():
    modules = demo_modules()

    assert {"loyalty", "exchanges", "bibliotheca"} <= set(modules)
    assert all(callable(module.run_demo) for module in modules.values())
