"""A deactivated card's passes are voided: Apple's pass gets `voided: true` and a push, the
Google object goes INACTIVE; both once, and back when the card is active again."""

import io
import json
import zipfile

import pytest

from loyalty.models import LoyaltyCard
from loyalty.services.apple_passes import authentication_token
from loyalty.services.wallet_sync import sync_wallet_passes

pytestmark = pytest.mark.django_db
PASS_TYPE = "pass.com.example.loyalty"


def downloaded_pass(client, serial: str) -> dict:
    response = client.get(
        f"/passkit/v1/passes/{PASS_TYPE}/{serial}",
        HTTP_AUTHORIZATION=f"ApplePass {authentication_token(serial)}",
    )
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return json.loads(archive.read("pass.json"))


def test_deactivation__voids_the_apple_pass_with_a_push_and_sets_the_google_object_inactive(
    client, frozen_now, program_factory, card_factory, fake_wallet, register_device
):
    card = card_factory(program_factory(), google="issuer.g-1", apple="serial-v1")
    device = register_device(card)
    assert sync_wallet_passes()["synced"] == 1
    assert "voided" not in downloaded_pass(client, "serial-v1")

    LoyaltyCard.objects.filter(pk=card.pk).update(is_active=False)  # by any code or SQL
    result = sync_wallet_passes()

    assert (result["cards_considered"], result["synced"], result["failed"]) == (1, 1, 0)
    last_patch = fake_wallet.google.calls_for("issuer.g-1")[-1]
    assert (last_patch.method, last_patch.body["state"]) == ("PATCH", "INACTIVE")
    assert fake_wallet.google.objects["issuer.g-1"]["state"] == "INACTIVE"
    assert [p.device_token for p in fake_wallet.apns.pushes] == [device.push_token] * 2
    changed = client.get(
        f"/passkit/v1/devices/{device.device_library_identifier}/registrations/{PASS_TYPE}"
    )
    assert changed.json()["serialNumbers"] == ["serial-v1"]
    assert downloaded_pass(client, "serial-v1")["voided"] is True
    assert sync_wallet_passes()["cards_considered"] == 0  # voided once, confirmed

    LoyaltyCard.objects.filter(pk=card.pk).update(is_active=True)
    sync_wallet_passes()
    assert fake_wallet.google.objects["issuer.g-1"]["state"] == "ACTIVE"
    assert "voided" not in downloaded_pass(client, "serial-v1")
