"""What a wallet pass shows of a card, read once before the concurrent calls start."""

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class CardSnapshot:
    card_id: int
    number: str
    points_balance: int
    stamp_count: int
    #: The version read with the balance: what a wallet confirms when the push succeeds.
    balance_version: int
    google_object_id: str
    apple_serial_number: str
    #: The loyaltyClass a deleted Google object is re-created in ("" if the program has none).
    google_class_id: str = ""
    #: APNs tokens of the devices registered for the card's Apple pass: (registration id, token).
    apple_devices: tuple[tuple[int, str], ...] = ()
    #: A deactivated card's passes are voided (Apple) or set INACTIVE (Google).
    is_active: bool = True
