"""The client refuses a bad stored address before any request; errors carry no raw bodies.

A collection row written before the model's checks (or around them, through the ORM)
still cannot send the worker, or the nightly run, to an internal service: the chain
fails for good naming the problem and the server it points at sees no request. What a
server answers is reported as its HTTP status and the API's error code, never as the
body it sent.
"""

from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.exceptions import AddressNotAllowed, BadResponse, RemoteIntegrationError
from bibliotheca.models import Collection, LicensePool, Timestamp
from bibliotheca.services.client import BibliothecaClient, Credentials
from devkit.bibliotheca_simulator import start_simulator
from jobs.models import JobRun, Lease
from jobs.runner import enqueue_job
from tests.bibliotheca.conftest import CHAIN, RECORDS, drain
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db

NIGHTLY = "bibliotheca.import_purchase_records_for_all_collections"
INTERNAL_PAGE = "root:x:0:0:internal-only-config db_password=hunter2"


@pytest.fixture(autouse=True)
def _clock(frozen_clock):
    return frozen_clock


def test_nightly_run__stored_internal_address_refused_before_any_request_others_import(
    settings, simulator, make_collection, catalogue
):
    # Plain http stays allowed here: the host check alone must refuse.
    settings.BIBLIOTHECA_ALLOWED_HOSTS = ["localhost"]
    good = make_collection(
        name="Good", base_url=simulator.base_url.replace("127.0.0.1", "localhost")
    )
    # Rows written through the ORM, as from before the checks; a second simulator stands in
    # for an internal service.
    internal = start_simulator(catalogue, library_id="lib", account_id="acct", account_key="key")
    try:
        bad = make_collection(name="Internal", base_url=internal.base_url)
        make_collection(
            name="Traversal",
            library_id="../../admin",
            base_url=simulator.base_url.replace("127.0.0.1", "localhost"),
        )
        enqueue_job(NIGHTLY, kwargs={}, trigger="schedule")
        runs = {r.kwargs.get("collection_id"): r for r in drain() if r.job == CHAIN}
    finally:
        internal.stop()

    assert sum(internal.state.counts.values()) == 0, "no request reached the internal service"
    failed = {pk: r.error for pk, r in runs.items() if r.status == "failed"}
    assert sorted(failed) == sorted(c.pk for c in Collection.objects.exclude(pk=good.pk))
    assert all(e.startswith("AddressNotAllowed: ") for e in failed.values())
    assert "'Internal': the API host must be one of localhost" in failed[bad.pk]
    assert "'Traversal': the library id must be a plain token" in " ".join(failed.values())
    assert not JobRun.objects.filter(status="queued").exists(), "a bad address is not retried"
    assert not Lease.objects.exists(), "the refused chains released their locks"
    ts = Timestamp.objects.get(service=PURCHASE_RECORD_SERVICE, collection=bad)
    assert ts.exception.startswith("AddressNotAllowed: Bibliotheca collection 'Internal'")
    assert LicensePool.objects.filter(collection=good).count() == RECORDS, "the others import"
    say(f"nightly run, stored internal address: {failed[bad.pk]}")


def test_client__refuses_https_downgrade_and_foreign_hosts_outside_debug(settings):
    settings.BIBLIOTHECA_ALLOWED_HOSTS = ["partner.yourcloudlibrary.com"]
    settings.BIBLIOTHECA_ALLOW_HTTP = False
    refused = {
        "http://partner.yourcloudlibrary.com/": "must start with https://",
        "https://169.254.169.254/": "the API host must be one of",
        "https://partner.yourcloudlibrary.com\\@10.0.0.1/": "without spaces|host must be one of",
    }
    for url, message in refused.items():
        with pytest.raises(AddressNotAllowed, match=message):
            BibliothecaClient(credentials(url))
    BibliothecaClient(credentials("https://partner.yourcloudlibrary.com/"))  # allowed


def credentials(base_url: str, library_id: str = "lib") -> Credentials:
    return Credentials(
        name="C", base_url=base_url, library_id=library_id, account_id="a", account_key="k"
    )


@pytest.mark.parametrize(
    ("status", "body", "expected", "error_class"),
    [
        (500, INTERNAL_PAGE, "HTTP 500 no API error document (", BadResponse),
        (404, INTERNAL_PAGE, "HTTP 404 no API error document (", RemoteIntegrationError),
        (
            403,
            f"<html><body>{INTERNAL_PAGE}</body></html>",
            "HTTP 403 no API error document (",
            RemoteIntegrationError,
        ),
        (
            401,
            "<Error><Code>InvalidSignature</Code><Message>signature does not match</Message></Error>",
            "HTTP 401 InvalidSignature: signature does not match",
            RemoteIntegrationError,
        ),
    ],
)
def test_error__status_and_api_error_code_never_the_raw_body(
    httpserver: HTTPServer, status, body, expected, error_class
):
    httpserver.expect_request("/cirrus/library/lib/data/marc").respond_with_data(body, status)
    client = BibliothecaClient(credentials(httpserver.url_for("/")))

    with pytest.raises(error_class) as caught:
        client.fetch_marc_page(
            start=datetime(2014, 1, 1, tzinfo=UTC), end=datetime(2014, 1, 2, tzinfo=UTC), offset=1
        )

    message = str(caught.value)
    assert expected in message
    assert "hunter2" not in message and "root:x" not in message
    say(f"HTTP {status}: {message}")


def test_error_document_in_a_200__code_kept_body_of_anything_else_not(httpserver: HTTPServer):
    httpserver.expect_request("/cirrus/library/lib/items/a").respond_with_data(
        "<Error><Code>Gen-001</Code><Message>try later</Message></Error>", 200
    )
    client = BibliothecaClient(credentials(httpserver.url_for("/")))

    with pytest.raises(RemoteIntegrationError, match="error document: Gen-001: try later"):
        client.fetch_items(["a"])


def test_redirect__not_followed_and_the_signature_never_leaves(httpserver: HTTPServer):
    """A 302 to another host: refused where it stands, the signed headers sent only once,
    to the collection's own address."""
    elsewhere = HTTPServer(host="127.0.0.1", port=0)
    elsewhere.expect_request("/steal").respond_with_data("<ok/>")
    elsewhere.start()
    try:
        httpserver.expect_request("/cirrus/library/lib/items/a").respond_with_data(
            "", 302, headers={"Location": elsewhere.url_for("/steal")}
        )
        client = BibliothecaClient(credentials(httpserver.url_for("/")))

        with pytest.raises(RemoteIntegrationError, match="HTTP 302 redirect refused"):
            client.fetch_items(["a"])
        assert elsewhere.log == []
    finally:
        elsewhere.stop()
    (request, _response), *others = httpserver.log
    assert others == [] and "3mcl-Authorization" in request.headers
