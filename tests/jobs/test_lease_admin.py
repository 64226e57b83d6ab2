"""Leases are read-only in the admin; "release" frees only a lease whose holder is gone."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.locks import acquire_lease, extend_lease
from jobs.models import JobRun, Lease
from tests.admin_helpers import post_action, staff_client

pytestmark = pytest.mark.django_db

VIEW = ("jobs", "view_lease")
RUN = ("jobs", "run_job")
URL = "admin:jobs_lease_changelist"


def holder(status: str, heartbeat_age_seconds: float, **fields) -> JobRun:
    beat = timezone.now() - timedelta(seconds=heartbeat_age_seconds)
    return JobRun.objects.create(job="jobs.demo_job", status=status, heartbeat_at=beat, **fields)


def lease(key: str, owner: str) -> Lease:
    acquire_lease(key=key, owner=owner, lease_seconds=600)
    return Lease.objects.get(key=key)


def messages_of(response) -> list[str]:
    return [m.message for m in response.wsgi_request._messages]


def test_lease__cannot_be_deleted_even_with_delete_permission(client):
    alive = holder("running", 1)
    row = lease("job:loyalty.expire_points", f"run:{alive.pk}")
    staff_client(client, "deleter", [VIEW, ("jobs", "delete_lease"), ("jobs", "change_lease")])
    delete = reverse("admin:jobs_lease_delete", args=[row.pk])
    page = client.get(reverse(URL)).content.decode()
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert post_action(client, reverse(URL), "delete_selected", row.pk, post="yes")
    assert 'value="delete_selected"' not in page and 'value="release"' not in page
    assert Lease.objects.filter(pk=row.pk).exists()


def test_release__refuses_live_holders_frees_dead_ones(client):
    running = holder("running", 2)
    killed = holder("running", 3600)  # kill -9: its heartbeat stopped an hour ago
    chain_hop = holder("queued", 0, kwargs={"lock_owner": "tok-1"})
    live = lease("job:loyalty.expire_points", f"run:{running.pk}")
    dead = lease("job:exchanges.purge_completed", f"run:{killed.pk}")
    chain = lease("bibliotheca:collection:3", "tok-1")
    unknown = lease("custom", "someone")
    staff_client(client, "oncall", [VIEW, RUN])

    response = post_action(client, reverse(URL), "release", live.pk, dead.pk, chain.pk, unknown.pk)

    assert set(Lease.objects.values_list("key", flat=True)) == {live.key, chain.key, unknown.key}
    released, refused = messages_of(response)
    assert released == "Released 1 lease(s): job:exchanges.purge_completed."
    assert refused.startswith("Refused 3 lease(s) whose holder is alive: ")
    assert re.search(rf"run #{running.pk} is running, heartbeat \d+s ago", refused)
    assert f"run #{chain_hop.pk} is queued" in refused
    assert "holder someone unknown; free at" in refused


def test_release__a_lease_renewed_meanwhile_stays(client):
    """The DELETE re-checks the expiry it judged: a holder that extended the lease is alive."""
    from jobs.services.lease_release import release_dead_leases

    killed = holder("running", 3600)
    row = lease("job:x", f"run:{killed.pk}")
    assert extend_lease(key="job:x", owner=row.owner, lease_seconds=900)  # it woke up
    released, refused = release_dead_leases([row])  # judged with the old expiry
    assert (released, refused) == ([], ["job:x: changed meanwhile (its holder renewed it)"])
    assert Lease.objects.filter(key="job:x").exists()


def test_release__needs_run_permission():
    killed = holder("running", 3600)
    row = lease("job:x", f"run:{killed.pk}")
    viewer = staff_client(Client(), "viewer", [VIEW])
    assert 'value="release"' not in viewer.get(reverse(URL)).content.decode()
    post_action(viewer, reverse(URL), "release", row.pk)
    assert Lease.objects.filter(pk=row.pk).exists()
