"""Leases are read-only in the admin; "release" frees only a lease whose holder is gone."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.models import JobRun, Lease
from jobs.runs.locks import acquire_lease
from tests.admin_helpers import post_action, staff_client
from tests.live_run import LiveRun, dead_run

pytestmark = pytest.mark.django_db

VIEW = ("jobs", "view_lease")
RUN = ("jobs", "run_job")
URL = "admin:jobs_lease_changelist"


def holder(status: str, heartbeat_age_seconds: float, **fields) -> JobRun:
    beat = timezone.now() - timedelta(seconds=heartbeat_age_seconds)
    return JobRun.objects.create(job="devkit.demo_job", status=status, heartbeat_at=beat, **fields)


def lease(key: str, owner: str, run: JobRun | None = None) -> Lease:
    acquire_lease(key=key, owner=owner, run_id=run and run.pk, lease_seconds=600)
    return Lease.objects.get(key=key)


def messages_of(response) -> list[str]:
    return [m.message for m in response.wsgi_request._messages]


def test_lease__cannot_be_deleted_even_with_delete_permission(client):
    queued = holder("queued", 1)
    row = lease("job:loyalty.expire_points", f"run:{queued.pk}", queued)
    staff_client(client, "deleter", [VIEW, ("jobs", "delete_lease"), ("jobs", "change_lease")])
    delete = reverse("admin:jobs_lease_delete", args=[row.pk])
    page = client.get(reverse(URL)).content.decode()
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert post_action(client, reverse(URL), "delete_selected", row.pk, post="yes")
    assert 'value="delete_selected"' not in page and 'value="release"' not in page
    assert Lease.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_release__refuses_live_holders_frees_dead_ones(client):
    running = holder("queued", 2)
    killed = dead_run(holder("queued", 3600))  # kill -9: its session ended
    handed_by = holder("succeeded", 5)  # a chain's hop that handed its lease on
    chain_hop = holder("queued", 0)
    with LiveRun(running):
        live = lease("job:loyalty.expire_points", f"run:{running.pk}", running)
        dead = lease("job:exchanges.purge_completed", f"run:{killed.pk}", killed)
        chain = lease("bibliotheca:collection:3", f"run:{handed_by.pk}", chain_hop)
        unknown = lease("custom", "someone")
        staff_client(client, "oncall", [VIEW, RUN])

        response = post_action(
            client, reverse(URL), "release", live.pk, dead.pk, chain.pk, unknown.pk
        )

    assert set(Lease.objects.values_list("key", flat=True)) == {live.key, chain.key, unknown.key}
    released, refused = messages_of(response)
    assert released == "Released 1 lease(s): job:exchanges.purge_completed."
    assert refused.startswith("Refused 3 lease(s) whose holder is alive: ")
    assert re.search(rf"run #{running.pk} is running, heartbeat \d+ s ago", refused)
    assert f"run #{chain_hop.pk} is queued" in refused
    assert "held by someone until" in refused


def test_release__a_lease_whose_holder_is_queued_again_meanwhile_stays(client):
    """The DELETE re-checks the rule it judged by: a holder queued again is alive."""
    from jobs.runs.lifecycle import judge, release_dead_leases

    ended = holder("failed", 3600)
    row = lease("job:x", f"run:{ended.pk}", ended)
    assert judge(row).alive is False
    JobRun.objects.filter(pk=ended.pk).update(status="queued")  # the reaper queued it again

    released, refused = release_dead_leases([row])

    assert released == [] and refused[0].startswith(f"job:x: run #{ended.pk} is queued")
    assert Lease.objects.filter(key="job:x").exists()


def test_release__needs_run_permission():
    ended = holder("failed", 3600)
    row = lease("job:x", f"run:{ended.pk}", ended)
    viewer = staff_client(Client(), "viewer", [VIEW])
    assert 'value="release"' not in viewer.get(reverse(URL)).content.decode()
    post_action(viewer, reverse(URL), "release", row.pk)
    assert Lease.objects.filter(pk=row.pk).exists()
