"""Pages of rows the system writes are read-only for everyone, a superuser included."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse
from django_q.models import Failure, OrmQ, Success

from bibliotheca.models import Gap, PendingEdition, Timestamp
from commerce.models import AuditLog, ExpiringToken, WebhookEvent
from exchanges.models import MagicToken
from jobs.models import Alert, JobRun, Lease, Notification
from loyalty.models import LoyaltyTransaction
from tests.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

READ_ONLY = [
    JobRun,
    Alert,
    Lease,
    Notification,
    Success,
    Failure,
    OrmQ,
    LoyaltyTransaction,
    MagicToken,
    Gap,
    Timestamp,
    PendingEdition,
    ExpiringToken,
    AuditLog,
    WebhookEvent,
]


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model._meta.label)
def test_read_only_page__no_add_change_or_delete_even_for_a_superuser(client, rf, model):
    boss = User.objects.create_superuser("boss", password="pw")
    client.force_login(boss)
    opts = model._meta
    request = rf.get("/")
    request.user = boss
    model_admin = admin.site.get_model_admin(model)

    add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    listing = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    assert add.status_code == 403
    assert listing.status_code == 200 and b'value="delete_selected"' not in listing.content
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_notification__read_only_page_yet_requeue_for_the_change_permission(client):
    row = Notification.objects.create(
        channel="email", recipient="a@example.com", template="t", body="b", dedup_key="k",
        status="dead",
    )  # fmt: skip
    staff_client(client, "oncall", [("jobs", "view_notification"), ("jobs", "change_notification")])

    page = client.get(reverse("admin:jobs_notification_change", args=[row.pk]))
    listing = client.get(reverse("admin:jobs_notification_changelist"))

    assert b"View notification" in page.content and b'name="_save"' not in page.content
    assert b'value="requeue"' in listing.content
