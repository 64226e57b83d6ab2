"""Which cards' wallets are behind, their snapshots, and what each wallet confirmed (named SQL).

A wallet is behind until it confirms the card's current balance_version, however long
ago the change was; the least recently attempted go first, so cards that keep failing do
not starve the others. A card a wallet refused for good (4xx) is quarantined at that
version: not behind for that wallet until the card changes.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from jobs.sql import fetch
from loyalty.models import AppleDeviceRegistration, LoyaltyCard, LoyaltyProgram, LoyaltyTransaction

WALLETS = ("google", "apple")


@dataclass(frozen=True, kw_only=True)
class CardSnapshot:
    """What a wallet pass shows of a card, read once before the concurrent calls start."""

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


#: (card, wallet) pairs of cards with that pass whose wallet is behind (a deactivated card
#: too: its change of state is what the wallet must show, its passes voided).
_BEHIND_PAIRS = """
    SELECT c.id AS card_id, w.wallet, s.attempted_at
      FROM loyalty_loyaltycard c
     CROSS JOIN LATERAL (VALUES ('google', c.google_object_id <> ''),
                                ('apple', c.apple_serial_number <> '')) AS w(wallet, has_pass)
      LEFT JOIN loyalty_walletsyncstate s ON s.card_id = c.id AND s.wallet = w.wallet
     WHERE w.has_pass AND COALESCE(s.synced_version, 0) < c.balance_version
       AND COALESCE(s.quarantined_version, 0) < c.balance_version
"""

#: Cards behind in any wallet, least recently attempted first, at most `limit`.
CARDS_BEHIND = f"""
    SELECT card_id, array_agg(wallet ORDER BY wallet)
      FROM ({_BEHIND_PAIRS}) behind
     GROUP BY card_id
     ORDER BY min(attempted_at) NULLS FIRST, card_id
     LIMIT %(limit)s
"""

#: The same, among the given cards only (the minutely sweep's changed cards).
CARDS_BEHIND_AMONG = f"""
    SELECT card_id, array_agg(wallet ORDER BY wallet)
      FROM ({_BEHIND_PAIRS} AND c.id = ANY(%(card_ids)s::bigint[])) behind
     GROUP BY card_id
     ORDER BY card_id
"""

#: Take (delete) the oldest changes the card trigger queued, at most `limit`, skipping rows
#: another sweep holds; with each, how long it waited (database clock). An idle minute
#: is this one statement on an empty table.
TAKE_CHANGES = """
    DELETE FROM loyalty_walletchange
     WHERE card_id IN (SELECT card_id FROM loyalty_walletchange
                        ORDER BY changed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING card_id, EXTRACT(EPOCH FROM clock_timestamp() - changed_at)::float8
"""

#: How many cards are behind, per wallet.
COUNT_BEHIND = f"SELECT wallet, count(*) FROM ({_BEHIND_PAIRS}) behind GROUP BY wallet"

#: Record a chunk of outcomes (one row per card and wallet, status synced, failed or
#: refused). A success moves synced_version up (never down: a late duplicate delivery
#: cannot undo a newer sync) and clears failures; a refusal quarantines the version pushed.
RECORD_OUTCOMES = """
    INSERT INTO loyalty_walletsyncstate AS s
           (card_id, wallet, synced_version, quarantined_version, published_tag,
            attempted_at, synced_at, failures, last_error)
    SELECT card_id, wallet, CASE WHEN status = 'synced' THEN version ELSE 0 END,
           CASE WHEN status = 'refused' THEN version ELSE 0 END, 0, %(now)s,
           CASE WHEN status = 'synced' THEN %(now)s::timestamptz END,
           CASE WHEN status = 'synced' THEN 0 ELSE 1 END, error
      FROM unnest(%(card_ids)s::bigint[], %(wallets)s::text[], %(versions)s::bigint[],
                  %(statuses)s::text[], %(errors)s::text[])
           AS o(card_id, wallet, version, status, error)
    ON CONFLICT (card_id, wallet) DO UPDATE SET
           synced_version = GREATEST(s.synced_version, EXCLUDED.synced_version),
           quarantined_version = GREATEST(s.quarantined_version, EXCLUDED.quarantined_version),
           attempted_at = EXCLUDED.attempted_at,
           synced_at = COALESCE(EXCLUDED.synced_at, s.synced_at),
           failures = CASE WHEN EXCLUDED.synced_at IS NULL THEN s.failures + 1 ELSE 0 END,
           last_error = EXCLUDED.last_error
"""

#: Announcements of tags take turns (a transaction lock; the two-key form, so no run's
#: lock, keyed by its id, is ever taken): a tag drawn later always commits later. Else a
#: big announcement still being written (its tags drawn) while a smaller one commits
#: would let a device's lastUpdated pass tags that are not visible yet: its pass missed.
LOCK_APPLE_TAGS = "SELECT pg_advisory_xact_lock(hashtext('loyalty.apple_tags'), 0)"

#: Apple: give the passes about to be announced a new passesUpdatedSince tag, committed
#: before any push, so a device that asks right after its push finds its pass.
PUBLISH_APPLE_TAGS = """
    INSERT INTO loyalty_walletsyncstate AS s
           (card_id, wallet, synced_version, published_tag, failures, last_error)
    SELECT card_id, 'apple', 0, nextval('loyalty_balance_version_seq'), 0, ''
      FROM unnest(%(card_ids)s::bigint[]) AS c(card_id)
    ON CONFLICT (card_id, wallet) DO UPDATE SET published_tag = EXCLUDED.published_tag
"""


def cards_behind(*, limit: int = 0, among: list[int] | None = None) -> dict[int, tuple[str, ...]]:
    """{card id: wallets behind}: of the cards `among`, else at most `limit` cards in the
    order they should be tried."""
    if among is not None:
        rows = fetch(CARDS_BEHIND_AMONG, {"card_ids": among})
    else:
        rows = fetch(CARDS_BEHIND, {"limit": limit})
    return {card_id: tuple(wallets) for card_id, wallets in rows}


def take_changes(*, limit: int) -> dict[int, float]:
    """{card id: seconds its change waited} of the changes taken (and removed) now."""
    return dict(fetch(TAKE_CHANGES, {"limit": limit}))


def count_behind() -> dict[str, int]:
    counts = dict(fetch(COUNT_BEHIND, {}))
    return {wallet: counts.get(wallet, 0) for wallet in WALLETS}


def cards_with_passes(
    *, card_ids: list[int] | None = None, since: datetime | None = None
) -> dict[int, tuple[str, ...]]:
    """Every wallet of the given cards (or of cards with a transaction since `since`)."""
    cards = LoyaltyCard.objects.filter(~Q(google_object_id="") | ~Q(apple_serial_number=""))
    if card_ids is not None:
        cards = cards.filter(pk__in=card_ids)
    else:
        recent = LoyaltyTransaction.objects.filter(transaction_at__gte=since).values("card_id")
        cards = cards.filter(pk__in=recent)
    rows = cards.order_by("pk").values_list("pk", "google_object_id", "apple_serial_number")
    return {
        pk: tuple(w for w, has in (("google", google), ("apple", apple)) if has)
        for pk, google, apple in rows
    }


def snapshots(wanted: dict[int, tuple[str, ...]]) -> list[CardSnapshot]:
    """Card states to push, in the order of `wanted`, with class ids and Apple devices (3 queries)."""
    rows = {
        row["id"]: row
        for row in LoyaltyCard.objects.filter(pk__in=list(wanted)).values(
            "id",
            "merchant_id",
            "number",
            "points_balance",
            "stamp_count",
            "balance_version",
            "google_object_id",
            "apple_serial_number",
            "is_active",
        )
    }
    merchants = {row["merchant_id"] for row in rows.values()}
    class_ids = dict(
        LoyaltyProgram.objects.filter(merchant_id__in=merchants, is_active=True)
        .exclude(google_wallet_class_id="")
        .order_by("merchant_id", "pk")
        .distinct("merchant_id")
        .values_list("merchant_id", "google_wallet_class_id")
    )
    devices: dict[int, list[tuple[int, str]]] = defaultdict(list)
    apple_cards = [pk for pk, wallets in wanted.items() if "apple" in wallets]
    for pk, card_id, token in AppleDeviceRegistration.objects.filter(
        card_id__in=apple_cards
    ).values_list("pk", "card_id", "push_token"):
        devices[card_id].append((pk, token))
    result = []
    for pk, wallets in wanted.items():
        row = rows.get(pk)
        if row is None:
            continue
        result.append(
            CardSnapshot(
                card_id=pk,
                number=row["number"],
                points_balance=row["points_balance"],
                stamp_count=row["stamp_count"],
                balance_version=row["balance_version"],
                google_object_id=row["google_object_id"] if "google" in wallets else "",
                apple_serial_number=row["apple_serial_number"] if "apple" in wallets else "",
                google_class_id=class_ids.get(row["merchant_id"], ""),
                apple_devices=tuple(devices.get(pk, ())),
                is_active=row["is_active"],
            )
        )
    return result


def publish_apple_tags(card_ids: list[int]) -> None:
    if card_ids:
        with transaction.atomic():
            fetch(LOCK_APPLE_TAGS, {})
            fetch(PUBLISH_APPLE_TAGS, {"card_ids": card_ids})


def record_outcomes(outcomes: list[tuple[int, str, int, str, str]], *, now: datetime) -> None:
    """Store (card id, wallet, version pushed, synced | failed | refused, error) rows in
    one statement."""
    if not outcomes:
        return
    card_ids, wallets, versions, statuses, errors = (
        list(column) for column in zip(*outcomes, strict=True)
    )
    fetch(
        RECORD_OUTCOMES,
        {
            "now": now,
            "card_ids": card_ids,
            "wallets": wallets,
            "versions": versions,
            "statuses": statuses,
            "errors": [e[:300] for e in errors],
        },
    )


def remove_registrations(registrations: list[tuple[int, str]]) -> int:
    """Devices APNs reported gone, by (registration id, the push token it refused): a
    device that registered a new token since the sync read the old one keeps it."""
    if not registrations:
        return 0
    gone = Q()
    for pk, token in registrations:
        gone |= Q(pk=pk, push_token=token)
    deleted, _ = AppleDeviceRegistration.objects.filter(gone).delete()
    return deleted
