"""The pass download as HTTP caching asks (PassKit Web Service Reference: "Check for the
If-Modified-Since header, and return HTTP status code 304 if the pass has not changed")."""

import pytest
from django.utils.http import http_date

from loyalty.models import LoyaltyCard
from loyalty.services.apple_passes import authentication_token

pytestmark = pytest.mark.django_db
URL = "/passkit/v1/passes/pass.com.example.loyalty/serial-0001"


def auth(**headers: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"ApplePass {authentication_token('serial-0001')}", **headers}


def modified(card: LoyaltyCard) -> int:
    card.refresh_from_db()
    return int(card.pass_updated_at.timestamp())


@pytest.fixture
def card(program_factory, card_factory, fake_wallet) -> LoyaltyCard:
    return card_factory(program_factory(), points=40, apple="serial-0001")


def test_download__last_modified_then_304_for_a_date_not_older_200_for_an_older_one(client, card):
    first = client.get(URL, **auth())
    last_modified = first["Last-Modified"]
    assert first.status_code == 200 and last_modified == http_date(modified(card))

    same = client.get(URL, **auth(HTTP_IF_MODIFIED_SINCE=last_modified))
    later = client.get(URL, **auth(HTTP_IF_MODIFIED_SINCE=http_date(modified(card) + 3600)))
    older = client.get(URL, **auth(HTTP_IF_MODIFIED_SINCE=http_date(modified(card) - 1)))
    junk = client.get(URL, **auth(HTTP_IF_MODIFIED_SINCE="yesterday, 99 Foo 20x6"))

    assert (same.status_code, same.content, same["Last-Modified"]) == (304, b"", last_modified)
    assert later.status_code == 304
    assert older.status_code == 200 and older["Content-Type"] == "application/vnd.apple.pkpass"
    assert junk.status_code == 200


def test_download__every_change_moves_last_modified_even_two_in_one_second(client, card):
    before = client.get(URL, **auth())["Last-Modified"]
    for points in (41, 42):  # two changes, well within one second
        LoyaltyCard.objects.filter(pk=card.pk).update(points_balance=points)
        response = client.get(URL, **auth(HTTP_IF_MODIFIED_SINCE=before))
        assert response.status_code == 200, points
        assert response["Last-Modified"] != before
        before = response["Last-Modified"]

    LoyaltyCard.objects.filter(pk=card.pk).update(
        last_activity_at=card.last_activity_at
    )  # no content
    assert client.get(URL, **auth(HTTP_IF_MODIFIED_SINCE=before)).status_code == 304


def test_download__unauthorized_is_401_whatever_if_modified_since_says(client, card):
    response = client.get(
        URL,
        HTTP_AUTHORIZATION="ApplePass wrong",
        HTTP_IF_MODIFIED_SINCE=http_date(modified(card) + 3600),
    )
    assert response.status_code == 401 and not response.has_header("Last-Modified")
