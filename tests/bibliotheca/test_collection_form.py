"""The Collection change page as view-only, change-only and no-permission staff.

The account key is write-only: no page renders it (the read-only view says "set" or "not
set"), a key of spaces is refused and spaces around a pasted key are dropped. The API
address is checked in the form: https and an allowed host only, the library id a plain
token, so staff with change permission cannot point the worker at internal services.
"""

import pytest
from django.urls import reverse

from bibliotheca.models import Collection
from tests.admin_helpers import staff_client
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db

KEY = "acct-key-5d1e8b2f-secret"
VENDOR = "https://partner.yourcloudlibrary.com/"
VIEW = (("bibliotheca", "view_collection"),)
CHANGE = (("bibliotheca", "change_collection"),)
ADD = (("bibliotheca", "add_collection"), ("bibliotheca", "view_collection"))


@pytest.fixture(autouse=True)
def production_addresses(settings):
    """The production rule: https to the vendor only (tests elsewhere allow the simulator)."""
    settings.BIBLIOTHECA_ALLOWED_HOSTS = ["partner.yourcloudlibrary.com"]
    settings.BIBLIOTHECA_ALLOW_HTTP = False


@pytest.fixture
def stored() -> Collection:
    return Collection.objects.create(
        name="Main", library_id="lib", account_id="acct", account_key=KEY, base_url=VENDOR
    )


def change_url(collection: Collection) -> str:
    return reverse("admin:bibliotheca_collection_change", args=[collection.pk])


def form_data(collection: Collection, **changes: str) -> dict[str, str]:
    data = {
        "name": collection.name,
        "protocol": collection.protocol,
        "library_id": collection.library_id,
        "account_id": collection.account_id,
        "account_key": "",
        "base_url": collection.base_url,
        "enabled": "on",
        "_save": "Save",
    }
    return {**data, **changes}


def row(collection: Collection) -> dict:
    return Collection.objects.filter(pk=collection.pk).values().get()


def errors_of(response) -> dict[str, list[str]]:
    return {k: list(v) for k, v in response.context["adminform"].form.errors.items()}


# -- the key is never rendered -------------------------------------------------------


def test_view_only_staff__change_page_says_set_and_never_shows_the_key(client, stored):
    staff_client(client, "viola", VIEW)
    pages = [
        change_url(stored),
        reverse("admin:bibliotheca_collection_history", args=[stored.pk]),
        reverse("admin:bibliotheca_collection_changelist"),
    ]

    responses = [client.get(url) for url in pages]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(KEY.encode() not in r.content for r in responses)
    page = responses[0].content.decode()
    assert 'type="password"' not in page  # no input: this user cannot set it
    assert "account key" in page.lower() and '<div class="readonly">set</div>' in page
    say("view-only staff: the change page shows the key as 'set', never its value")


def test_change_only_staff__write_only_input_empty_and_key_never_shown(client, stored):
    staff_client(client, "carl", CHANGE)

    page = client.get(change_url(stored))

    html = page.content.decode()
    assert page.status_code == 200 and KEY not in html
    assert '<input type="password" name="account_key"' in html and 'value="' + KEY not in html
    assert '<div class="readonly">set</div>' in html


def test_no_permission_staff__no_page_at_all(client, stored):
    staff_client(client, "nora", ())

    pages = [change_url(stored), reverse("admin:bibliotheca_collection_changelist")]

    assert [client.get(url).status_code for url in pages] == [403, 403]


def test_form_shown_again_with_errors__never_echoes_the_typed_key(client, stored):
    staff_client(client, "carl", CHANGE)

    response = client.post(
        change_url(stored), form_data(stored, account_key="new-key-typed", library_id="a/b")
    )

    assert response.status_code == 200 and "library_id" in errors_of(response)
    assert "new-key-typed" not in response.content.decode()
    assert row(stored)["account_key"] == KEY


# -- strip and require ---------------------------------------------------------------


def test_key_of_spaces__refused_and_the_stored_key_kept(client, stored):
    staff_client(client, "carl", CHANGE)

    response = client.post(change_url(stored), form_data(stored, account_key="    "))

    assert response.status_code == 200
    assert errors_of(response) == {"account_key": ["An account key of only spaces is not a key."]}
    assert row(stored)["account_key"] == KEY


def test_add__key_of_spaces_refused__a_pasted_key_saved_without_its_spaces(client):
    staff_client(client, "ada", ADD)
    url = reverse("admin:bibliotheca_collection_add")
    new = Collection(name="New", library_id="lib2", account_id="a2", base_url=VENDOR)

    refused = client.post(url, form_data(new, account_key="   "))
    saved = client.post(url, form_data(new, account_key="  pasted-key\t"))

    assert refused.status_code == 200
    assert errors_of(refused) == {"account_key": ["An account key of only spaces is not a key."]}
    assert saved.status_code == 302
    assert Collection.objects.get(name="New").account_key == "pasted-key"


def test_change__blank_key_keeps_the_stored_one__a_new_one_replaces_it(client, stored):
    staff_client(client, "carl", CHANGE)

    kept = client.post(change_url(stored), form_data(stored, account_id="acct2"))
    assert kept.status_code == 302 and row(stored)["account_key"] == KEY

    replaced = client.post(change_url(stored), form_data(stored, account_key=" new-key "))
    assert replaced.status_code == 302 and row(stored)["account_key"] == "new-key"


# -- the API address -----------------------------------------------------------------

BAD_ADDRESSES = [
    ("base_url", "http://partner.yourcloudlibrary.com/", "must start with https://"),
    ("base_url", "https://10.0.0.5:6379/", "the API host must be one of"),
    ("base_url", "https://localhost/", "the API host must be one of"),
    ("base_url", "https://metadata.google.internal/", "the API host must be one of"),
    ("base_url", "https://partner.yourcloudlibrary.com.evil.example/", "host must be one of"),
    ("base_url", "https://partner.yourcloudlibrary.com@10.0.0.5/", "host must be one of"),
    ("base_url", "https://u:p@partner.yourcloudlibrary.com/", "host must be one of"),
    ("base_url", "https://partner.yourcloudlibrary.com:99999/", "not a valid URL"),
    ("base_url", "https://partner.yourcloudlibrary.com/?x=1", "must not have a query"),
    ("base_url", "file:///etc/passwd", "Enter a valid URL."),
    ("library_id", "../../admin", "must be a plain token"),
    ("library_id", "lib/items", "must be a plain token"),
    ("library_id", "lib?x=1", "must be a plain token"),
    ("library_id", "lib id", "must be a plain token"),
    ("library_id", "lib%2F..", "must be a plain token"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_ADDRESSES)
def test_change__address_refused_with_message_and_nothing_saved(
    client, stored, field, value, message
):
    staff_client(client, "carl", CHANGE)
    before = row(stored)

    response = client.post(change_url(stored), form_data(stored, **{field: value}))

    assert response.status_code == 200, "shown again, not saved"
    errors = errors_of(response)
    assert any(message in e for e in errors.get(field, [])), errors
    assert row(stored) == before
    say(f"Collection {field}={value!r}: refused ({errors[field][0]})")


def test_change__vendor_https_address_and_plain_library_id_saved(client, stored):
    staff_client(client, "carl", CHANGE)

    response = client.post(
        change_url(stored),
        form_data(stored, base_url="https://partner.yourcloudlibrary.com/", library_id="ab-12_C"),
    )

    assert response.status_code == 302
    assert row(stored)["library_id"] == "ab-12_C"


def test_plain_http__only_with_debug_when_not_set(settings, monkeypatch, stored):
    """BIBLIOTHECA_ALLOW_HTTP defaults to DEBUG: a local simulator in development only."""
    del settings.BIBLIOTHECA_ALLOW_HTTP
    monkeypatch.delenv("BIBLIOTHECA_ALLOW_HTTP", raising=False)
    settings.BIBLIOTHECA_ALLOWED_HOSTS = ["127.0.0.1"]
    stored.base_url = "http://127.0.0.1:8000/"

    settings.DEBUG = True
    stored.full_clean()
    settings.DEBUG = False
    with pytest.raises(Exception, match="must start with https://"):
        stored.full_clean()


def test_plain_http__never_in_production_whatever_the_setting(settings, stored):
    settings.BIBLIOTHECA_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.BIBLIOTHECA_ALLOW_HTTP = True
    settings.PRODUCTION = True
    stored.base_url = "http://127.0.0.1:8000/"

    with pytest.raises(Exception, match="must start with https://"):
        stored.full_clean()
