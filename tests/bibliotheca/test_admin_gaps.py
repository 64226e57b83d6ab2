"""Admin: gaps on the collection page and their own list; "Retry gaps" queues the chain
as the acting user and only for those who may run it; "Dismiss" needs the change right."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from bibliotheca.models import Gap
from jobs.models import JobRun
from tests.admin_helpers import post_action, run_page, staff_client
from tests.bibliotheca.conftest import CHAIN, NOW

pytestmark = pytest.mark.django_db

URL = reverse("admin:bibliotheca_gap_changelist")
DAY_2 = datetime(2014, 1, 2, tzinfo=UTC)
VIEW = (("bibliotheca", "view_gap"), ("bibliotheca", "view_collection"))
OPERATOR = (*VIEW, ("jobs", "run_job"), ("jobs", "view_jobrun"))


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def gap(collection) -> Gap:
    return Gap.objects.create(
        collection=collection,
        day=DAY_2,
        window_end=DAY_2 + timedelta(days=1),
        error="BadResponse: day 2 answers 503",
        attempts=5,
    )


def actions_offered(client) -> list[str]:
    page = client.get(URL)
    assert page.status_code == 200
    form = page.context["action_form"]  # None: no action at all
    return [name for name, _ in form.fields["action"].choices if name] if form else []


def test_collection_page__lists_open_gaps_and_the_list_counts_them(client, collection, gap):
    staff_client(client, "vera", VIEW)

    detail = client.get(reverse("admin:bibliotheca_collection_change", args=[collection.pk]))
    listing = client.get(reverse("admin:bibliotheca_collection_changelist"))

    assert "2014-01-02T00:00+00:00 .. 2014-01-03T00:00+00:00: 5 attempt(s)" in (
        detail.content.decode()
    )
    assert "day 2 answers 503" in detail.content.decode()
    assert listing.context["cl"].result_list[0]._open_gaps == 1


def test_retry_gaps__queues_one_chain_per_collection_as_the_user(client, collection, gap):
    staff_client(client, "olga", OPERATOR)
    assert actions_offered(client) == ["retry_gaps"]

    response = post_action(client, URL, "retry_gaps", gap.pk)

    (run,) = JobRun.objects.filter(job=CHAIN)
    assert response.status_code == 302 and response.url == run_page(run)
    assert (run.trigger, run.triggered_by) == ("admin", "olga")
    assert run.kwargs == {"collection_id": collection.pk, "force_reimport": False}


def test_retry_gaps__leaves_dismissed_gaps_and_disabled_collections_out(client, collection, gap):
    staff_client(client, "olga", OPERATOR)
    Gap.objects.update(status=Gap.Status.DISMISSED)

    post_action(client, URL, "retry_gaps", gap.pk)

    assert not JobRun.objects.exists()


@pytest.mark.parametrize(
    "permissions", [VIEW, (*VIEW, ("bibliotheca", "change_gap"))], ids=["view-only", "change"]
)
def test_retry_gaps__not_offered_nor_accepted_without_the_run_permission(
    client, collection, gap, permissions
):
    staff_client(client, "vera", permissions)
    assert "retry_gaps" not in actions_offered(client)

    post_action(client, URL, "retry_gaps", gap.pk)

    assert not JobRun.objects.exists()
    assert Gap.objects.get().status == Gap.Status.OPEN


def test_gaps__refused_to_staff_without_any_permission(client, gap):
    staff_client(client, "nobody", ())

    assert client.get(URL).status_code == 403
    post_action(client, URL, "retry_gaps", gap.pk)
    post_action(client, URL, "dismiss_gaps", gap.pk)

    assert not JobRun.objects.exists() and Gap.objects.get().status == Gap.Status.OPEN


def test_dismiss__needs_the_change_permission_and_records_who(client, gap):
    staff_client(client, "olga", OPERATOR)
    assert "dismiss_gaps" not in actions_offered(client)
    post_action(client, URL, "dismiss_gaps", gap.pk)
    assert Gap.objects.get().status == Gap.Status.OPEN

    staff_client(client, "carl", (*VIEW, ("bibliotheca", "change_gap")))
    post_action(client, URL, "dismiss_gaps", gap.pk)

    gap.refresh_from_db()
    assert (gap.status, gap.dismissed_by) == (Gap.Status.DISMISSED, "carl")
