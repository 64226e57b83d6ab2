"""Property-based tests (hypothesis): MARC extraction and the Bibliotheca client's XML parsing.

Whatever the remote sends, the client returns records/items or raises
RemoteIntegrationError (terminal, recorded on the run): never another exception. Records
without exactly one usable 001 are skipped and counted, never imported.
"""

import re
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.exceptions import RemoteIntegrationError
from bibliotheca.models import Identifier, LicensePool, Timestamp
from bibliotheca.services.client import BibliothecaClient, Credentials
from bibliotheca.services.items import ITEM_FIELDS, parse_items
from bibliotheca.services.pages import bibliotheca_id, parse_marc_page
from devkit.bibliotheca_simulator import Catalogue
from jobs.models import JobRun, Lease
from tests.bibliotheca.conftest import drain
from tests.reliability.conftest import say

MARC_NS = "http://www.loc.gov/MARC21/slim"
xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)
control = st.one_of(xml_text, st.from_regex(r" *[A-Za-z0-9_-]{1,20} *", fullmatch=True))
record = st.fixed_dictionaries({"controls": st.lists(control, max_size=3), "title": xml_text})


def marc_xml(records: list[dict]) -> bytes:
    body = "".join(
        "<record><leader>00000nam a2200000 a 4500</leader>"
        + "".join(f'<controlfield tag="001">{escape(c)}</controlfield>' for c in r["controls"])
        + '<controlfield tag="005">20260101000000.0</controlfield>'
        + f'<datafield tag="245" ind1="0" ind2="0"><subfield code="a">{escape(r["title"])}'
        + "</subfield></datafield></record>"
        for r in records
    )
    return f'<collection xmlns="{MARC_NS}">{body}</collection>'.encode()


def expected_id(controls: list[str]) -> str | None:
    """The one 001, stripped, when it is an item id (a plain token)."""
    value = controls[0].strip() if len(controls) == 1 else ""
    return value if re.fullmatch(r"[A-Za-z0-9_-]{1,255}", value) else None


@settings(max_examples=200, deadline=None)
@given(st.lists(record, max_size=12))
def test_marc_extraction__one_id_per_record_with_exactly_one_001_else_none(records):
    parsed = parse_marc_page(marc_xml(records))

    assert len(parsed) == len(records)
    ids = [bibliotheca_id(r) for r in parsed]
    assert ids == [expected_id(r["controls"]) for r in records]


class _Response:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code, self.content = status, content


class _Session:
    """Answers every GET with one canned body (no network: hypothesis runs thousands)."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status = body, status

    def get(self, url, headers=None, timeout=None, allow_redirects=True):
        return _Response(self.status, self.body)


def client_answering(body: bytes, status: int = 200) -> BibliothecaClient:
    client = BibliothecaClient(
        Credentials(
            name="Prop",
            base_url="http://127.0.0.1/",  # an allowed address: the session is canned
            library_id="lib",
            account_id="acct",
            account_key="key",
        ),
        timeout_seconds=1,
    )
    client.session = _Session(body, status)
    return client


def mutated(doc: bytes, data) -> bytes:
    """A valid document cut short, spliced or with bytes flipped."""
    cut = data.draw(st.integers(0, len(doc)))
    how = data.draw(st.sampled_from(["truncate", "splice", "flip", "prefix"]))
    if how == "truncate":
        return doc[:cut]
    if how == "splice":
        return doc[:cut] + data.draw(st.binary(max_size=20)) + doc[cut:]
    if how == "flip" and doc:
        i = min(cut, len(doc) - 1)
        return doc[:i] + bytes([doc[i] ^ data.draw(st.integers(1, 255))]) + doc[i + 1 :]
    return data.draw(st.sampled_from([b"<Error>", b"\xef\xbb\xbf", b"  ", b"<?xml?>"])) + doc


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.just(b"<collection/>"),
    st.just(b"<Error><Code>Bad</Code><Message>no</Message></Error>"),
    st.just(b"<ArrayOfItem><Item><ItemId>x</ItemId></Item></ArrayOfItem>"),
)


@settings(max_examples=250, deadline=None)
@given(body=bodies, data=st.data(), records=st.lists(record, max_size=3))
def test_fetch_marc_page__any_body_gives_records_or_remote_integration_error(body, data, records):
    for candidate in (body, mutated(marc_xml(records), data)):
        try:
            parsed = client_answering(candidate).fetch_marc_page(
                start=datetime(2026, 1, 1, tzinfo=UTC),
                end=datetime(2026, 1, 2, tzinfo=UTC),
                offset=1,
            )
        except RemoteIntegrationError as exc:
            assert str(exc).startswith("Bibliotheca collection 'Prop', window ")
        else:
            assert isinstance(parsed, list)
            for r in parsed:
                bibliotheca_id(r)  # never raises


item = st.fixed_dictionaries(
    {name: xml_text for name in ITEM_FIELDS},
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(item, max_size=5), data=st.data(), body=bodies)
def test_fetch_items__any_body_gives_items_or_remote_integration_error(items, data, body):
    doc = (
        "<ArrayOfItem>"
        + "".join(
            "<Item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in i.items()) + "</Item>"
            for i in items
        )
        + "</ArrayOfItem>"
    ).encode()
    parsed = parse_items(doc)
    assert set(parsed) == {i["ItemId"].strip() for i in items if i["ItemId"].strip()}
    for candidate in (body, mutated(doc, data)):
        try:
            got = client_answering(candidate).fetch_items(["a", "b"])
        except RemoteIntegrationError as exc:
            assert str(exc).startswith("Bibliotheca collection 'Prop', items batch of 2")
        else:
            assert isinstance(got, dict)


@pytest.fixture
def catalogue() -> Catalogue:
    today = timezone.now().date()
    return Catalogue(start_date=today - timedelta(days=2), days=2, records_per_day=20)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    records_per_day=st.integers(1, 70),
    no_001_every=st.integers(0, 6),
    two_001_every=st.integers(0, 6),
)
def test_chain__bad_records_skipped_and_counted(
    collection, simulator, records_per_day, no_001_every, two_001_every
):
    catalogue = Catalogue(
        start_date=timezone.now().date() - timedelta(days=2),
        days=2,
        records_per_day=records_per_day,
        no_001_every=no_001_every,
        two_001_every=two_001_every,
    )
    simulator.state.catalogue = catalogue
    for model in (LicensePool, Identifier, Timestamp, JobRun, Lease):
        model.objects.all().delete()
    start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=collection, finish=start)
    from jobs.runner import enqueue_job

    enqueue_job(
        "bibliotheca.import_purchase_records_by_collection",
        kwargs={"collection_id": collection.pk, "time_budget_seconds": 60},
        trigger="command",
    )
    drain(include_apply=False)

    bad = 0
    for position in range(1, catalogue.total_records + 1):
        if no_001_every and position % no_001_every == 0:
            bad += 1
        elif two_001_every and position % two_001_every == 0:
            bad += 1
    runs = list(JobRun.objects.filter(job__endswith="_by_collection"))
    assert {r.status for r in runs} == {"succeeded"}
    assert sum(r.result["skipped"] for r in runs) == bad
    assert Timestamp.objects.get(collection=collection).progress["skipped"] == bad
    assert LicensePool.objects.count() == catalogue.total_records - bad
    say(
        f"chain with {catalogue.total_records} records (no 001 every {no_001_every}, two 001 "
        f"every {two_001_every}): {bad} skipped and counted, {LicensePool.objects.count()} pools"
    )
