"""Admin: the account key is never shown; the actions queue chains with the actor recorded."""

import pytest
from django.contrib.auth.models import User

from jobs.models import JobRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("olga", "olga@example.com", "pw"))
    return client


def test_collection_pages__never_show_the_account_key(admin_client, make_collection):
    collection = make_collection(account_key="very-secret-key")

    listing = admin_client.get("/admin/bibliotheca/collection/")
    detail = admin_client.get(f"/admin/bibliotheca/collection/{collection.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert b"very-secret-key" not in listing.content + detail.content
    assert b"never imported" in listing.content


@pytest.mark.parametrize(
    ("action", "force"), [("import_purchase_records", False), ("force_reimport", True)]
)
def test_actions__queue_one_chain_per_enabled_collection(
    admin_client, make_collection, action, force
):
    enabled = make_collection(name="A")
    disabled = make_collection(name="B", enabled=False)

    response = admin_client.post(
        "/admin/bibliotheca/collection/",
        {"action": action, "_selected_action": [enabled.pk, disabled.pk]},
        follow=True,
    )

    (run,) = JobRun.objects.all()
    assert (run.trigger, run.triggered_by, run.kwargs) == (
        "admin",
        "olga",
        {"collection_id": enabled.pk, "force_reimport": force},
    )
    assert "1 disabled collection(s) left out" in response.content.decode()
