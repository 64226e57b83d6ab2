"""What a staff login alone opens: permissions decide, not `is_staff` (docs/operations.md
"Who can do what"). A staff user with no permission (a clerk given a login for one app
page) reads /health/ and /metrics as anonymous callers do."""

import pytest
from django.test import Client

from tests.admin_helpers import make_staff
from tests.jobs.test_health_privacy import app_check_naming_a_host, problems
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db
app_check_naming_a_host = app_check_naming_a_host  # an app's check naming an internal host


def logged_in(*permissions: str) -> Client:
    client = Client()
    client.force_login(make_staff("_".join(["staff", *permissions]) or "staff", *permissions))
    return client


def test_health__staff_without_permissions_gets_states_only_like_anonymous(app_check_naming_a_host):
    secrets = problems()
    clerk = logged_in().get("/health/")
    oncall = logged_in("jobs.view_jobrun").get("/health/")

    leaked = [name for name, secret in secrets.items() if secret in clerk.content.decode()]
    shown = [name for name, secret in secrets.items() if secret in oncall.content.decode()]
    say(f"/health/ as staff without permissions shows {leaked}; with jobs.view_jobrun {shown}")
    assert leaked == []
    assert clerk.json() == Client().get("/health/").json()
    assert shown == list(secrets)  # who may read the dashboard reads the reasons here too


def test_metrics__in_production_staff_without_permissions_is_refused(settings):
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = ""
    problems()

    clerk = logged_in().get("/metrics")
    oncall = logged_in("jobs.view_jobrun").get("/metrics")

    say(
        f"/metrics in production: staff without permissions {clerk.status_code}, "
        f"with jobs.view_jobrun {oncall.status_code}"
    )
    assert clerk.status_code == 401 and b"jobs_" not in clerk.content
    assert oncall.status_code == 200 and b"jobs_runs" in oncall.content
