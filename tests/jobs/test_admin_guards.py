"""Hand-made change-list query strings get the plain list or a 400, never a 500."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure

from jobs.models import JobRun, Lease, Notification

pytestmark = pytest.mark.django_db

LISTS = [
    "admin:jobs_jobrun_changelist",
    "admin:jobs_notification_changelist",
    "admin:jobs_lease_changelist",
    "admin:jobs_alert_changelist",
    "admin:jobs_jobrun_overview",
    "admin:django_q_schedule_changelist",
    "admin:django_q_failure_changelist",
    "admin:django_q_success_changelist",
    "admin:django_q_ormq_changelist",
]
QUERIES = [
    "job=%00",
    "status=%00",
    "state__exact=%00",
    "status__exact=%00",
    "kind__exact=%00",
    "resolved_at__isempty=%00",
    "opened_at__year=99999999999",
    "trigger__exact=%00",
    "channel__exact=%00",
    "group=%00",
    "key=%00",
    "created_at__year=99999999999",
    "created_at__year=2026&created_at__month=13",
    "created_at__year=9999",
    "next_run__year=99999999999",
    "expires_at__year=-1",
    "q=%00",
]


@pytest.fixture
def boss() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("boss", password="pw"))
    JobRun.objects.create(job="devkit.demo_job", status="failed")
    Notification.objects.create(
        channel="email", recipient="a@example.com", template="t", body="b", dedup_key="k"
    )
    now = timezone.now()
    Lease.objects.create(key="job:x", owner="run:1", acquired_at=now, expires_at=now)
    Failure.objects.create(id="f" * 32, name="n", func="f", started=now, stopped=now, success=False)
    return client


@pytest.mark.parametrize("name", LISTS)
def test_change_lists__bad_query_strings_are_not_500s(boss, name):
    url = reverse(name)
    answers = {query: boss.get(f"{url}?{query}") for query in QUERIES}
    server_errors = {q: r.status_code for q, r in answers.items() if r.status_code >= 500}
    assert server_errors == {}
    for query, response in answers.items():
        if response.status_code == 302:  # Django's "incorrect lookup": the unfiltered list
            assert response["Location"].endswith("?e=1"), query
            assert boss.get(response["Location"]).status_code == 200


def test_lookup_on_a_column_not_offered_as_a_filter__400(boss):
    url = reverse("admin:jobs_notification_changelist")
    assert boss.get(f"{url}?status__exact=dead").status_code == 200  # offered
    assert boss.get(f"{url}?body__startswith=secret").status_code == 400
    assert boss.get(f"{url}?dedup_key__regex=.*").status_code == 400
    runs = reverse("admin:jobs_jobrun_changelist")
    assert boss.get(f"{runs}?job=devkit.demo_job&status=failed").status_code == 200
    assert boss.get(f"{runs}?job__startswith=jobs").status_code == 400
    assert boss.get(f"{runs}?traceback__contains=key").status_code == 400


#: Object ids the database cannot hold, on pages that are not ours (the admin's change,
#: history and delete views, the content-type shortcut) and ours.
NUL_IDS = [
    "/admin/django_q/failure/%00/change/",
    "/admin/django_q/failure/%00/history/",
    "/admin/django_q/failure/%00/delete/",
    "/admin/django_q/success/a%00b/history/",
    "/admin/r/9/%00/",
    "/admin/jobs/jobrun/%00/change/",
    "/admin/jobs/notification/1%00/history/",
    "/admin/jobs/lease/job:x%00/change/",
]


@pytest.mark.parametrize("user", ["superuser", "view_only", "no_permission", "anonymous"])
def test_object_id_with_a_nul__404_for_everyone(user):
    from tests.admin_helpers import make_staff

    client = Client(raise_request_exception=False)
    if user == "superuser":
        client.force_login(User.objects.create_superuser("boss", password="pw"))
    elif user == "view_only":
        client.force_login(make_staff("viewer", "django_q.view_failure", "jobs.view_jobrun"))
    elif user == "no_permission":
        client.force_login(make_staff("nobody"))
    answers = {url: client.get(url).status_code for url in NUL_IDS}
    assert answers == dict.fromkeys(NUL_IDS, 404)
    assert client.post("/admin/django_q/failure/%00/delete/", {"post": "yes"}).status_code == 404
