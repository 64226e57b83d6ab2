"""Operator-surface fixtures: staff users with and without the run permission."""

import pytest
from django.contrib.auth.models import User

from tests.admin_helpers import PASSWORD, make_staff

__all__ = ["PASSWORD", "make_staff"]


@pytest.fixture
def operator_user(db) -> User:
    """Staff who may view runs, run jobs and requeue notifications."""
    return make_staff(
        "operator", "view_jobrun", "run_job", "view_notification", "change_notification"
    )


@pytest.fixture
def viewer_user(db) -> User:
    """Staff who may only look."""
    return make_staff("viewer", "view_jobrun", "view_notification")


@pytest.fixture
def operator(client, operator_user):
    client.force_login(operator_user)
    return client


@pytest.fixture
def viewer(client, viewer_user):
    client.force_login(viewer_user)
    return client
