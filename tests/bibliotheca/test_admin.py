"""Admin: the account key is never shown; the actions queue one chain per enabled collection
as the acting user, "Force reimport" asks first, and one run lands on its page."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import LicensePool, Timestamp
from jobs.models import JobRun
from tests.admin_helpers import post_action, run_page, staff_client
from tests.bibliotheca.conftest import NOW, drain

pytestmark = pytest.mark.django_db

URL = reverse("admin:bibliotheca_collection_changelist")
CHAIN = "bibliotheca.import_purchase_records_by_collection"
#: Exactly what an operator needs for both actions (not a superuser).
OPERATOR_PERMISSIONS = (
    ("bibliotheca", "view_collection"),
    ("bibliotheca", "change_collection"),
    ("jobs", "view_jobrun"),
    ("jobs", "run_job"),
)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def without(*codenames: str):
    return tuple(p for p in OPERATOR_PERMISSIONS if p[1] not in codenames)


@pytest.fixture
def operator(client):
    return staff_client(client, "olga", OPERATOR_PERMISSIONS)


def act(client, action: str, *ids: int, confirm: bool = False):
    return post_action(client, URL, action, *ids, confirm=confirm)


def changelist(client) -> str:
    page = client.get(URL)
    assert page.status_code == 200
    return page.content.decode()


def test_collection_pages__never_show_the_account_key(client, make_collection):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    collection = make_collection(account_key="very-secret-key")

    listing = client.get(URL)
    detail = client.get(reverse("admin:bibliotheca_collection_change", args=[collection.pk]))

    assert listing.status_code == detail.status_code == 200
    assert b"very-secret-key" not in listing.content + detail.content
    assert b"never imported" in listing.content


# -- Import purchase records ---------------------------------------------------------


def test_import__no_confirmation__one_chain_as_the_user_landing_on_the_run(
    operator, make_collection
):
    enabled = make_collection(name="A")
    disabled = make_collection(name="B", enabled=False)

    response = act(operator, "import_purchase_records", enabled.pk, disabled.pk)

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert (run.job, run.trigger, run.triggered_by, run.status, run.kwargs) == (
        CHAIN,
        "admin",
        "olga",
        "queued",
        {"collection_id": enabled.pk, "force_reimport": False},
    )
    page = operator.get(response["Location"]).content.decode()
    assert f"Queued import of A as run #{run.pk}; 1 disabled collection(s) left out." in page


def test_import__several_collections__one_run_each_linked_from_the_list(operator, make_collection):
    first, second = make_collection(name="A"), make_collection(name="B")

    response = act(operator, "import_purchase_records", first.pk, second.pk)

    runs = list(JobRun.objects.order_by("pk"))
    assert response.status_code == 302 and response["Location"] == URL
    assert [r.kwargs["collection_id"] for r in runs] == [first.pk, second.pk]
    assert {(r.trigger, r.triggered_by) for r in runs} == {("admin", "olga")}
    html = changelist(operator)
    assert "Queued import for 2 collection(s):" in html
    for run, name in zip(runs, ["A", "B"], strict=True):
        assert f'<a href="{run_page(run)}">#{run.pk} ({name})</a>' in html


def test_import__only_disabled_collections__warns_and_queues_nothing(operator, make_collection):
    disabled = make_collection(enabled=False)

    act(operator, "import_purchase_records", disabled.pk)
    act(operator, "force_reimport", disabled.pk)

    assert not JobRun.objects.exists()
    assert "No enabled collection selected: no forced reimport queued." in changelist(operator)


# -- Force reimport ------------------------------------------------------------------


def test_force_reimport__confirmation_says_it_restarts_at_2014_and_queues_nothing(
    operator, make_collection
):
    imported = make_collection(name="Imported")
    Timestamp.objects.create(
        service=PURCHASE_RECORD_SERVICE,
        collection=imported,
        finish=datetime(2014, 1, 3, tzinfo=UTC),
    )
    fresh = make_collection(name="Fresh")
    disabled = make_collection(name="Off", enabled=False)

    page = act(operator, "force_reimport", imported.pk, fresh.pk, disabled.pk)

    html = page.content.decode()
    assert page.status_code == 200 and "Force a reimport from 2014-01-01?" in html
    assert "restarts at 2014-01-01 and re-reads every purchase record page" in html
    assert "Imported</a>: checkpoint 2014-01-03 00:00 UTC moves back" in html
    assert "Fresh</a>: never imported; about 4 days re-read from 2014-01-01" in html
    assert "1 selected collections are disabled and will be left alone" in html
    assert 'value="Yes, reimport everything"' in html and "olga" in html
    form = html.split("<form")[-1]
    assert f'value="{disabled.pk}"' not in form and f'value="{fresh.pk}"' in form
    assert not JobRun.objects.exists()


def test_force_reimport__confirmed__queues_as_the_user_lands_on_the_run_which_shows_progress(
    operator, collection, simulator
):
    response = act(operator, "force_reimport", collection.pk, confirm=True)

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert (run.job, run.trigger, run.triggered_by, run.kwargs) == (
        CHAIN,
        "admin",
        "olga",
        {"collection_id": collection.pk, "force_reimport": True},
    )
    page = operator.get(response["Location"]).content.decode()
    assert f"Queued forced reimport of Main library as run #{run.pk}." in page

    drain(include_apply=False)  # what the cluster's workers do, hop by hop

    run.refresh_from_db()
    assert run.status == "succeeded" and run.kwargs["since"].startswith("2014-01-01")
    assert (run.progress["unit"], run.progress["total"]) == ("days", 4)
    assert LicensePool.objects.filter(collection=collection).exists()


def test_force_reimport__warns_about_a_chain_already_queued(operator, collection):
    act(operator, "import_purchase_records", collection.pk)
    queued = JobRun.objects.get()

    html = act(operator, "force_reimport", collection.pk).content.decode()

    assert "A chain is already queued or running" in html and f"#{queued.pk} (queued)" in html
    assert JobRun.objects.count() == 1


# -- Permissions ---------------------------------------------------------------------


def test_operator__is_offered_both_actions(operator, collection):
    html = changelist(operator)

    assert 'value="import_purchase_records"' in html and 'value="force_reimport"' in html


def test_force_reimport__needs_change_as_well_as_run(client, collection):
    user = staff_client(client, "rita", without("change_collection"))

    html = changelist(user)
    response = act(user, "force_reimport", collection.pk, confirm=True)

    assert 'value="import_purchase_records"' in html and 'value="force_reimport"' not in html
    # Not one of the user's actions: Django sends the POST back to the list, queues nothing.
    assert response.status_code == 302 and response["Location"] == URL
    assert not JobRun.objects.exists()


@pytest.mark.parametrize("action", ["import_purchase_records", "force_reimport"])
def test_actions__are_refused_without_the_run_job_permission(client, collection, action):
    user = staff_client(client, "viewer", without("run_job"))

    html = changelist(user)
    response = act(user, action, collection.pk, confirm=True)

    assert f'value="{action}"' not in html
    assert response.status_code == 200 and "Queued" not in response.content.decode()
    assert not JobRun.objects.exists()


def test_without_view_jobrun__stays_on_the_list_with_a_link_to_the_run(client, collection):
    user = staff_client(client, "vic", without("view_jobrun"))

    response = act(user, "import_purchase_records", collection.pk)

    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == URL
    assert run.triggered_by == "vic"
    assert f'<a href="{run_page(run)}">#{run.pk} (Main library)</a>' in changelist(user)


def test_staged_editions__are_listed_read_only_and_found_by_batch(client):
    from bibliotheca.models import Identifier, PendingEdition

    ident = Identifier.objects.create(type="bibliotheca", value="staged-1")
    row = PendingEdition.objects.create(
        batch="8d3f5a52-3a37-4e0e-9a3c-0d2a4a0f2b11", identifier=ident, data_hash="h", title="Waits"
    )
    staff_client(client, "viewer", [("bibliotheca", "view_pendingedition")])
    url = reverse("admin:bibliotheca_pendingedition_changelist")

    found = client.get(url, {"q": str(row.batch)})
    assert found.status_code == 200 and b"Waits" in found.content
    assert b"Waits" not in client.get(url, {"q": "8d3f5a52-0000-0000-0000-000000000000"}).content
    assert client.get(reverse("admin:bibliotheca_pendingedition_add")).status_code == 403
    change = client.post(
        reverse("admin:bibliotheca_pendingedition_change", args=[row.pk]), {"title": "Edited"}
    )
    assert change.status_code == 403
    row.refresh_from_db()
    assert row.title == "Waits"
