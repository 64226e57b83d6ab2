"""Apple's PassKit web service, as a device uses it: register, get a push, fetch the new pass.

The device is Django's test client speaking Apple's protocol to our views; the push
goes through the real APNs client to the HTTP/2 fake; the pass's signature is checked
by `openssl smime -verify` against the test CA, as a device checks it against Apple's.
"""

import io
import json
import subprocess
import threading
import zipfile
from hashlib import sha1

import pytest
from django.db import connection, transaction
from django.test import Client

from loyalty.models import AppleDeviceRegistration, LoyaltyCard
from loyalty.services import wallet_state
from loyalty.services.apple_passes import (
    PassContent,
    PassSigner,
    authentication_token,
    build_pkpass,
)
from loyalty.services.wallet_sync import sync_wallet_passes

pytestmark = pytest.mark.django_db
PASS_TYPE = "pass.com.example.loyalty"
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PUSH_TOKEN = "ab" * 32


def unzip(pkpass: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def openssl_verifies(files: dict[str, bytes], ca_file, tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "manifest.json").write_bytes(files["manifest.json"])
    (tmp_path / "signature").write_bytes(files["signature"])
    return subprocess.run(
        [
            "openssl",
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            tmp_path / "signature",
            "-content",
            tmp_path / "manifest.json",
            "-CAfile",
            ca_file,
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )


def auth(serial: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"ApplePass {authentication_token(serial)}"}


@pytest.fixture
def card(frozen_now, program_factory, card_factory) -> LoyaltyCard:
    return card_factory(program_factory(), points=40, apple="serial-0001")


def test_device__registers_gets_a_push_after_a_change_and_fetches_a_verified_pass(
    client, card, fake_wallet, wallet_keys, tmp_path
):
    # The pass the customer added (e.g. from an email link) carries the token and our URL.
    first = unzip(
        build_pkpass(
            PassContent(
                serial_number="serial-0001",
                number=card.number,
                points_balance=40,
                stamp_count=0,
                organization_name="Coffee",
            ),
            signer=PassSigner.from_settings(),
        )
    )
    pass_json = json.loads(first["pass.json"])
    token = pass_json["authenticationToken"]
    assert pass_json["webServiceURL"] == "https://wallet.example.com/passkit/"
    base = f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}"

    registered = client.post(
        f"{base}/serial-0001",
        {"pushToken": PUSH_TOKEN},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"ApplePass {token}",
    )
    again = client.post(
        f"{base}/serial-0001",
        {"pushToken": PUSH_TOKEN},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"ApplePass {token}",
    )
    assert (registered.status_code, again.status_code) == (201, 200)

    card.points_balance = 65  # a purchase
    card.save(update_fields=["points_balance"])
    result = sync_wallet_passes()

    assert result["wallets"]["apple"]["devices_pushed"] == 1
    [push] = fake_wallet.apns.pushes
    assert (push.device_token, push.topic, push.payload, push.status) == (
        PUSH_TOKEN,
        PASS_TYPE,
        b"{}",
        200,
    )
    # The device asks what changed, then fetches the pass.
    changed = client.get(base, {"passesUpdatedSince": "0"})
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == ["serial-0001"]
    tag = changed.json()["lastUpdated"]
    assert client.get(base, {"passesUpdatedSince": tag}).status_code == 204
    assert client.get(base).json()["serialNumbers"] == ["serial-0001"]  # first question: all
    other_device = f"/passkit/v1/devices/ffff0000/registrations/{PASS_TYPE}"
    assert client.get(other_device, {"passesUpdatedSince": "0"}).status_code == 204

    response = client.get(
        f"/passkit/v1/passes/{PASS_TYPE}/serial-0001", HTTP_AUTHORIZATION=f"ApplePass {token}"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.apple.pkpass"
    files = unzip(response.content)
    assert json.loads(files["pass.json"])["storeCard"]["primaryFields"][0]["value"] == 65
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    assert all(sha1(files[name]).hexdigest() == digest for name, digest in manifest.items())
    verified = openssl_verifies(files, wallet_keys.ca_file, tmp_path)
    assert verified.returncode == 0, verified.stderr

    files["manifest.json"] = files["manifest.json"].replace(b"pass.json", b"pass.jsoN")
    assert openssl_verifies(files, wallet_keys.ca_file, tmp_path).returncode != 0


def test_device__a_wrong_token_or_an_unknown_serial_is_401_and_changes_nothing(
    client, card, fake_wallet
):
    base = f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}"
    body = {"pushToken": PUSH_TOKEN}
    wrong = client.post(
        f"{base}/serial-0001",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION="ApplePass not-the-token",
    )
    missing = client.post(f"{base}/serial-0001", body, content_type="application/json")
    unknown = client.post(
        f"{base}/serial-9999", body, content_type="application/json", **auth("serial-9999")
    )
    fetch = client.get(f"/passkit/v1/passes/{PASS_TYPE}/serial-0001", **auth("serial-0002"))

    assert [r.status_code for r in (wrong, missing, unknown, fetch)] == [401, 401, 401, 401]
    assert not AppleDeviceRegistration.objects.exists()


def test_device__bad_push_token_is_400_and_unregister_stops_the_pushes(client, card, fake_wallet):
    url = f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}/serial-0001"
    bad = client.post(
        url, {"pushToken": "not hex!"}, content_type="application/json", **auth("serial-0001")
    )
    assert bad.status_code == 400
    client.post(
        url, {"pushToken": PUSH_TOKEN}, content_type="application/json", **auth("serial-0001")
    )
    assert client.delete(url, **auth("serial-0001")).status_code == 200

    card.points_balance = 1
    card.save(update_fields=["points_balance"])
    sync_wallet_passes()

    assert not AppleDeviceRegistration.objects.exists() and fake_wallet.apns.pushes == []


def test_log_endpoint__keeps_device_messages_short_in_our_log(client, caplog):
    response = client.post(
        "/passkit/v1/log", {"logs": ["x" * 2000, "second"]}, content_type="application/json"
    )

    assert response.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.passkit"]
    assert lines == [f"device log: {'x' * 500}", "device log: second"]


def test_secret_key_rotated__an_update_keeps_the_token_the_pass_was_issued_with(
    client, card, fake_wallet, settings
):
    """Apple: "Any field on a pass can be updated except for the authentication token and
    serial number"; "Don't change the authentication token in an update". A device holding
    a pass issued before SECRET_KEY was rotated must get its update with the same token."""
    issued_token = authentication_token("serial-0001")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    card.points_balance = 65
    card.save(update_fields=["points_balance"])

    response = client.get(
        f"/passkit/v1/passes/{PASS_TYPE}/serial-0001",
        HTTP_AUTHORIZATION=f"ApplePass {issued_token}",
    )

    assert response.status_code == 200
    pass_json = json.loads(unzip(response.content)["pass.json"])
    assert pass_json["storeCard"]["primaryFields"][0]["value"] == 65
    assert pass_json["authenticationToken"] == issued_token


@pytest.mark.django_db(transaction=True)  # two syncs publish tags on their own connections
def test_two_syncs_at_once__a_device_with_two_passes_learns_both_changes(
    program_factory, card_factory, settings
):
    """At minute 0 the hourly run and the minutely sweep start together and each announces
    its cards' passes. A device holding one pass from each (cards of two merchants) must
    learn both, whichever announcement commits first: its tag moves past both."""
    settings.LOYALTY_APPLE_PASS_TYPE_ID = PASS_TYPE
    hourly_card = card_factory(program_factory(), apple="serial-h")
    sweep_card = card_factory(program_factory(), apple="serial-s")
    for n, card in enumerate((hourly_card, sweep_card)):
        AppleDeviceRegistration.objects.create(
            card=card, device_library_identifier=DEVICE, push_token=f"{n:064x}"
        )
    url = f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}"
    client = Client()
    tag = client.get(url).json()["lastUpdated"]  # the device's first question: all, a tag
    hourly_published, release = threading.Event(), threading.Event()

    def hourly_run() -> None:  # a big announcement, still being written
        try:
            with transaction.atomic():
                wallet_state.publish_apple_tags([hourly_card.pk])
                hourly_published.set()
                release.wait(1.0)
        finally:
            connection.close()

    hourly = threading.Thread(target=hourly_run)
    hourly.start()
    hourly_published.wait(5)
    wallet_state.publish_apple_tags([sweep_card.pk])  # the sweep's, committed, pushed
    learned = []
    answer = client.get(url, {"passesUpdatedSince": tag})  # after the sweep's push
    if answer.status_code == 200:
        learned += answer.json()["serialNumbers"]
        tag = answer.json()["lastUpdated"]
    release.set()
    hourly.join()
    answer = client.get(url, {"passesUpdatedSince": tag})  # after the hourly run's push
    if answer.status_code == 200:
        learned += answer.json()["serialNumbers"]

    assert sorted(set(learned)) == ["serial-h", "serial-s"]
