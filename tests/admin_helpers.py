"""Admin test helpers shared by the apps: a staff user with exact permissions, actions, runs."""

from collections.abc import Iterable

from django.contrib.auth.models import Permission, User
from django.urls import reverse


def staff_client(client, username: str, permissions: Iterable[tuple[str, str]]):
    """Log `client` in as a staff user holding exactly `permissions` ((app, codename) pairs)."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in permissions
        ]
    )
    client.force_login(user)
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
