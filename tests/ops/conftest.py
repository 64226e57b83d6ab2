"""Operator-surface fixtures: staff users with and without the run permission."""

import pytest
from django.contrib.auth.models import Permission, User

PASSWORD = "correct horse battery staple"


def make_staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


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
