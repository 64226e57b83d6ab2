"""Admin test helpers shared by every app: staff users with exact permissions, actions, runs."""

from collections.abc import Iterable

from django.contrib.auth.models import Permission, User
from django.urls import reverse

#: Every test user's password (the browser tests type it).
PASSWORD = "correct horse battery staple"


def _permission(name: str) -> Permission:
    """`"app_label.codename"`, or a bare codename that only one app has."""
    app, _, codename = name.rpartition(".")
    found = Permission.objects.filter(codename=codename)
    return found.get(content_type__app_label=app) if app else found.get()


def make_staff(username: str, *permissions: str) -> User:
    """A staff user holding exactly `permissions` (no superuser shortcuts)."""
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.set([_permission(name) for name in permissions])
    return User.objects.get(pk=user.pk)  # a fresh object: no cached permissions


def staff_client(client, username: str, permissions: Iterable[tuple[str, str]]):
    """Log `client` in as a staff user holding exactly `permissions` ((app, codename) pairs)."""
    client.force_login(make_staff(username, *(f"{app}.{code}" for app, code in permissions)))
    return client


def post_action(client, url: str, action: str, *ids: int, confirm: bool = False, **extra):
    """POST an admin changelist action; `confirm` answers its confirmation page."""
    data = {"action": action, "_selected_action": list(ids), **extra}
    if confirm:
        data["post"] = "yes"
    return client.post(url, data)


def run_page(run) -> str:
    """Admin URL of a JobRun: where an action that queued one run lands."""
    return reverse("admin:jobs_jobrun_change", args=[run.pk])
