"""/health/ with the database down: anonymous callers learn "database unreachable", no host."""

import json
import logging
import socket
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory

from jobs.health.views import health_view

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket closes


@contextmanager
def database_unreachable():
    """The real connection, pointed at a port nobody listens on (then put back)."""
    saved = dict(connection.settings_dict)
    port = closed_port()
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    try:
        yield port
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_health__database_down__anonymous_sees_no_host(caplog):
    caplog.set_level(logging.ERROR, logger="jobs.health")
    with database_unreachable() as port:
        response = Client().get("/health/")
    body = response.content.decode()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unhealthy",
        "checks": {"database": {"state": "fail", "ok": False, "warning": False}},
        "lines": ["database: FAIL"],
    }
    assert "127.0.0.1" not in body and str(port) not in body
    assert f"port {port}" in caplog.text  # the details are in the log


def test_health__head_answers_the_status_a_load_balancer_acts_on():
    assert Client().head("/health/").status_code == 200
    with database_unreachable():
        assert Client().head("/health/").status_code == 503
    assert Client().post("/health/").status_code == 405


def test_health__database_down__staff_sees_the_error():
    request = RequestFactory().get("/health/")
    request.user = User(username="oncall", is_staff=True, is_superuser=True, is_active=True)
    with database_unreachable() as port:
        response = health_view(request)
    check = json.loads(response.content)["checks"]["database"]
    assert response.status_code == 503
    assert check["detail"].startswith("database unreachable")
    assert "127.0.0.1" in check["error"] and str(port) in check["error"]


def problems() -> dict[str, str]:
    """Runs whose details must stay private: a flag naming ids, an exception naming a
    host, a refused function, a stale heartbeat's host and pid. Returns the secrets."""
    from datetime import timedelta

    from django.utils import timezone

    from jobs.models import JobRun
    from jobs.queue.guard import REFUSED_JOB

    now = timezone.now()
    JobRun.objects.create(
        job="tests.flag_me", trigger="command", status="succeeded", finished_at=now,
        needs_attention=True, attention_reason="webhook event evt_9f8e7d unpaid sub_4242",
    )  # fmt: skip
    failed = JobRun.objects.create(
        job="devkit.demo_job", trigger="command", status="failed", finished_at=now,
        needs_attention=True, attention_reason="3 cards failed",
    )  # fmt: skip
    JobRun.objects.create(
        job=REFUSED_JOB, trigger="schedule", status="failed", finished_at=now,
        needs_attention=True, attention_reason="refused task: function 'os.system'",
    )  # fmt: skip
    JobRun.objects.create(
        job="devkit.demo_job", trigger="command", status="running", host="worker-7.internal",
        pid=31337, heartbeat_at=now - timedelta(minutes=5),
    )  # fmt: skip
    return {
        "flag": "evt_9f8e7d",
        "subscription": "sub_4242",
        "host": "wallet.internal",
        "port": "8443",
        "function": "os.system",
        "worker": "worker-7.internal",
        "pid": "31337",
        "run id": f"#{failed.pk}",
        "count": "1 failed run",
    }


def wallet_check():
    """An app's check whose exception names an internal host (as a wallet error can)."""
    from jobs.health.checks import Check

    return Check(
        "partner_api", False, "cannot read wallet status (see the log)", warning=True,
        error="ConnectionError: HTTPSConnectionPool(host='wallet.internal', port=8443)",
    )  # fmt: skip


@pytest.fixture
def app_check_naming_a_host():
    from jobs.health.checks import APP_CHECKS, register_check

    register_check(wallet_check)
    yield
    APP_CHECKS.remove(wallet_check)


def test_health__anonymous_gets_states_only_staff_everything(admin_client, app_check_naming_a_host):
    secrets = problems()

    anonymous = Client().get("/health/")
    staff = admin_client.get("/health/")

    body = anonymous.content.decode()
    assert anonymous.status_code == 200  # nothing here stops this process serving
    assert [name for name, secret in secrets.items() if secret in body] == []
    data = anonymous.json()
    assert data["status"] == "degraded"
    assert all(set(check) == {"state", "ok", "warning"} for check in data["checks"].values())
    assert data["checks"]["attention"]["state"] == "warn"
    assert all(line.count(":") == 1 for line in data["lines"])  # "name: STATE"
    staff_body = staff.content.decode()
    assert [name for name, secret in secrets.items() if secret not in staff_body] == []
