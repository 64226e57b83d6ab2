"""Apple devices registered for a card's pass (PassKit web service): one row per device and pass.

A registration only ever changes its own row, so a call about one card never rewrites the
token of another customer's card; the devices of a pass are counted under the card's row
lock, so concurrent registrations cannot overshoot LOYALTY_APPLE_MAX_DEVICES_PER_PASS.
"""

from enum import StrEnum

from django.db import transaction

from loyalty.conf import loyalty_settings
from loyalty.models import AppleDeviceRegistration, LoyaltyCard


class Registered(StrEnum):
    CREATED = "created"
    KNOWN = "known"
    #: The pass has its maximum of devices: nothing was written.
    FULL = "full"


def register_device(*, card_id: int, device_library_identifier: str, push_token: str) -> Registered:
    """Register (or refresh the push token of) one device for one card's pass."""
    with transaction.atomic():
        LoyaltyCard.objects.select_for_update().filter(pk=card_id).values_list("pk").first()
        registrations = AppleDeviceRegistration.objects.filter(card_id=card_id)
        updated = registrations.filter(device_library_identifier=device_library_identifier)
        if updated.exists():
            updated.exclude(push_token=push_token).update(push_token=push_token)
            return Registered.KNOWN
        if registrations.count() >= int(loyalty_settings.APPLE_MAX_DEVICES_PER_PASS):
            return Registered.FULL
        AppleDeviceRegistration.objects.create(
            card_id=card_id,
            device_library_identifier=device_library_identifier,
            push_token=push_token,
        )
        return Registered.CREATED


def unregister_device(*, card_id: int, device_library_identifier: str) -> None:
    AppleDeviceRegistration.objects.filter(
        card_id=card_id, device_library_identifier=device_library_identifier
    ).delete()
