"""/health/ with the database down: anonymous callers learn "database unreachable", no host."""

import json
import logging
import socket
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory

from jobs.views import health_view

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


def test_health__database_down__staff_sees_the_error():
    request = RequestFactory().get("/health/")
    request.user = User(username="oncall", is_staff=True, is_active=True)
    with database_unreachable() as port:
        response = health_view(request)
    check = json.loads(response.content)["checks"]["database"]
    assert response.status_code == 503
    assert check["detail"].startswith("database unreachable")
    assert "127.0.0.1" in check["error"] and str(port) in check["error"]
