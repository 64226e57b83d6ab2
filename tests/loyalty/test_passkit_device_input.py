"""The PassKit web service against a hostile device: junk gets a 4xx (never a 500), a
registration changes only its own row, a pass takes a bounded number of devices, and
device log lines cannot forge records of ours or flood the log."""

from datetime import timedelta

import pytest
import time_machine

from loyalty.models import AppleDeviceRegistration, LoyaltyCard
from loyalty.services import device_log
from loyalty.services.apple_passes import authentication_token

pytestmark = pytest.mark.django_db
PASS_TYPE = "pass.com.example.loyalty"
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN = "ab" * 32
DEEP = "[" * 100_000 + "]" * 100_000


def auth(serial: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"ApplePass {authentication_token(serial)}"}


def register_url(serial: str, device: str = DEVICE) -> str:
    return f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE}/{serial}"


@pytest.fixture
def card(frozen_now, program_factory, card_factory, fake_wallet) -> LoyaltyCard:
    return card_factory(program_factory(), apple="serial-0001")


@pytest.fixture
def fresh_log_budget():
    device_log._window.update(minute=-1, written=0, dropped=0)
    yield
    device_log._window.update(minute=-1, written=0, dropped=0)


@pytest.mark.parametrize(
    "body",
    [
        f'{{"pushToken": "{TOKEN}\\n"}}',  # a trailing newline: "$" matched it
        f'{{"pushToken": "{TOKEN}x"}}',
        '{"pushToken": 5}',
        '{"pushToken": null}',
        '{"pushToken": ["ab"]}',
        "[]",
        "not json",
        DEEP,
        '{"pushToken": "' + "ab" * 5000 + '"}',
        b"\xff\xfe",
    ],
    ids=["newline", "not-hex", "number", "null", "list", "array", "junk", "deep", "huge", "bytes"],
)
def test_registration__a_bad_body_is_400_and_writes_nothing(client, card, body):
    response = client.post(
        register_url("serial-0001"), body, content_type="application/json", **auth("serial-0001")
    )

    assert response.status_code == 400 and response.content == b""
    assert not AppleDeviceRegistration.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        {"passesUpdatedSince": "²"},
        {"passesUpdatedSince": "9" * 5000},
        {"passesUpdatedSince": "-1"},
        {"passesUpdatedSince": "1e5"},
        {"passesUpdatedSince": "12\n"},
    ],
    ids=["superscript", "5000-digits", "negative", "exponent", "newline"],
)
def test_updated_passes__a_bad_tag_is_400(client, card, register_device, query):
    AppleDeviceRegistration.objects.create(
        device_library_identifier=DEVICE, push_token=TOKEN, card=card
    )
    url = f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}"

    assert client.get(url, query).status_code == 400
    assert client.get(f"/passkit/v1/devices/{'x' * 200}/registrations/{PASS_TYPE}").status_code == (
        400
    )


@pytest.mark.parametrize(
    "body",
    ['{"logs": 5}', '{"logs": null}', '{"logs": "one line"}', "[]", "junk", DEEP, b"\xff"],
    ids=["number", "null", "string", "array", "junk", "deep", "bytes"],
)
def test_log__a_bad_body_is_400(client, body):
    assert client.post("/passkit/v1/log", body, content_type="application/json").status_code == (
        400
    )


def test_registration__changes_only_its_own_row_never_another_cards(
    client, card, program_factory, card_factory
):
    """The same device id on another customer's card keeps its push token: the sync of that
    card must not start failing because this one registered."""
    other = card_factory(program_factory(), apple="serial-other")
    theirs = AppleDeviceRegistration.objects.create(
        device_library_identifier=DEVICE, push_token="cd" * 32, card=other
    )

    created = client.post(
        register_url("serial-0001"),
        {"pushToken": TOKEN},
        content_type="application/json",
        **auth("serial-0001"),
    )
    new_token = client.post(
        register_url("serial-0001"),
        {"pushToken": "ef" * 32},
        content_type="application/json",
        **auth("serial-0001"),
    )

    assert (created.status_code, new_token.status_code) == (201, 200)
    rows = AppleDeviceRegistration.objects.order_by("pk").values_list("card_id", "push_token")
    assert list(rows) == [(other.pk, "cd" * 32), (card.pk, "ef" * 32)]
    assert AppleDeviceRegistration.objects.get(card=other).pk == theirs.pk


def test_registration__past_the_devices_per_pass_setting_a_new_device_is_refused(
    client, card, settings
):
    settings.LOYALTY_APPLE_MAX_DEVICES_PER_PASS = 2

    def register(device: str) -> int:
        return client.post(
            register_url("serial-0001", device),
            {"pushToken": TOKEN},
            content_type="application/json",
            **auth("serial-0001"),
        ).status_code

    assert [register("dev1"), register("dev2"), register("dev3"), register("dev1")] == [
        201,
        201,
        403,
        200,  # a known device still refreshes its token
    ]
    assert sorted(card.apple_registrations.values_list("device_library_identifier", flat=True)) == [
        "dev1",
        "dev2",
    ]
    assert client.delete(
        register_url("serial-0001", "dev2"), **auth("serial-0001")
    ).status_code == (200)
    assert register("dev3") == 201


def test_log__one_escaped_record_per_line_capped_in_count_and_size(
    client, caplog, fresh_log_budget
):
    forged = "fetch failed\n2026-03-01 02:00:00 ERROR jobs: payout sent to \u202eevil"

    response = client.post(
        "/passkit/v1/log",
        {"logs": [forged, {"nested": 1}, *["y" * 900] * 30]},
        content_type="application/json",
    )

    assert response.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.passkit"]
    assert len(lines) == 20
    assert lines[0] == (
        "device log: fetch failed\\n2026-03-01 02:00:00 ERROR jobs: payout sent to \\u202eevil"
    )
    assert lines[1] == "device log: {'nested': 1}"
    assert lines[2] == f"device log: {'y' * 500}"
    assert all("\n" not in line and line.isascii() for line in lines)


def test_log__limited_per_minute_then_open_again_the_next_minute(
    client, caplog, settings, frozen_now, fresh_log_budget
):
    settings.LOYALTY_PASSKIT_LOG_LINES_PER_MINUTE = 5

    def post(n: int) -> int:
        body = {"logs": [f"line {i}" for i in range(n)]}
        return client.post("/passkit/v1/log", body, content_type="application/json").status_code

    assert [post(3), post(3), post(3)] == [200, 200, 200]
    with time_machine.travel(frozen_now + timedelta(minutes=1), tick=False):
        assert post(1) == 200

    lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.passkit"]
    assert lines == [
        "device log: line 0",
        "device log: line 1",
        "device log: line 2",
        "device log: line 0",
        "device log: line 1",
        "device log: over 5 lines this minute; further lines dropped until the next",
        "device log: line 0",
    ]
