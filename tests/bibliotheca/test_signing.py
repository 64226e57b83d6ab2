"""Signing: the documented known answer, and the simulator refusing a bad signature."""

from datetime import UTC, datetime

import pytest

from bibliotheca.exceptions import RemoteIntegrationError
from bibliotheca.services.client import BibliothecaClient
from bibliotheca.services.signing import signed_headers


def test_signed_headers__match_the_documented_known_answer():
    headers = signed_headers(
        account_id="a",
        account_key="b",
        method="GET",
        path_with_query="/cirrus/library/c/some_url",
        now=datetime(2016, 1, 1, tzinfo=UTC),
    )

    assert headers == {
        "3mcl-Datetime": "Fri, 01 Jan 2016 00:00:00 GMT",
        "3mcl-Version": "2.0",
        "3mcl-Authorization": "3MCLAUTH a:HZHNGfn6WVceakGrwXaJQ9zIY0Ai5opGct38j9/bHrE=",
    }


@pytest.mark.django_db
def test_wrong_account_key__is_refused_with_401_as_a_terminal_error(make_collection, simulator):
    client = BibliothecaClient.for_collection(make_collection(account_key="wrong"))

    with pytest.raises(RemoteIntegrationError) as error:
        client.fetch_marc_page(
            start=datetime(2014, 1, 1, tzinfo=UTC), end=datetime(2014, 1, 2, tzinfo=UTC), offset=1
        )

    assert str(error.value) == (
        "Bibliotheca collection 'Main library', window 2014-01-01T00:00:00..2014-01-02T00:00:00 "
        "offset 1: HTTP 401 InvalidSignature: signature does not match"
    )
    assert simulator.state.counts == {"unauthorized": 1}


@pytest.mark.django_db
def test_signed_request__is_accepted_and_returns_the_page(collection, simulator):
    client = BibliothecaClient.for_collection(collection)

    records = client.fetch_marc_page(
        start=datetime(2014, 1, 1, tzinfo=UTC), end=datetime(2014, 1, 2, tzinfo=UTC), offset=101
    )

    assert [r["001"].data for r in records] == [f"bib20140101{i:04d}" for i in range(100, 120)]
