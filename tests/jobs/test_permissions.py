"""Who may run a job: `jobs.run_job` plus every permission the job declares."""

import pytest

from jobs.management.commands.demo import demo_modules
from jobs.permissions import can_run_job
from tests.admin_helpers import make_staff

pytestmark = pytest.mark.django_db


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

    assert {"loyalty", "exchanges", "bibliotheca"} <= set(modules)
    assert all(callable(module.run_demo) for module in modules.values())
