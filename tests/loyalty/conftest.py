"""Loyalty fixtures: factories that keep the ledger invariant, a frozen clock, the wallet fakes."""

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.template import engines as template_engines

from devkit.demos.loyalty import opening_balance
from devkit.wallets.keys import FakeKeys, generate_keys
from devkit.wallets.kit import WalletFakes
from loyalty.models import (
    AppleDeviceRegistration,
    Customer,
    LoyaltyCard,
    LoyaltyProgram,
    LoyaltyTransaction,
    Merchant,
)
from loyalty.selectors import expiration_day

#: The nightly run in most tests: 2026-03-01 02:00 UTC.
NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
_numbers = itertools.count(1)


@pytest.fixture
def template_override(settings, tmp_path) -> Callable[[str, str], None]:
    """Replace one template in every engine (a customized or broken notification)."""
    engines = [dict(engine) for engine in settings.TEMPLATES]
    for engine in engines:
        engine["DIRS"] = [tmp_path, *engine.get("DIRS", [])]
    settings.TEMPLATES = engines

    def write(name: str, text: str) -> None:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for engine in template_engines.all():  # the cached loaders forget the old text
            for loader in engine.engine.template_loaders:
                loader.reset()

    return write


@pytest.fixture
def frozen_now() -> Iterator[datetime]:
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def program_factory() -> Callable[..., LoyaltyProgram]:
    def make(
        *,
        expiration_days: int | None = 365,
        is_active: bool = True,
        warning_days: int = 14,
        timezone: str = "UTC",
    ) -> LoyaltyProgram:
        merchant = Merchant.objects.create(name=f"Merchant {next(_numbers)}", timezone=timezone)
        return LoyaltyProgram.objects.create(
            merchant=merchant,
            name=f"{merchant.name} points",
            is_active=is_active,
            points_expiration_days=expiration_days,
            expiration_warning_days=warning_days,
        )

    return make


@pytest.fixture
def card_factory() -> Callable[..., LoyaltyCard]:
    """A card whose balance was earned in one transaction at its last activity."""

    def make(
        program: LoyaltyProgram,
        *,
        points: int = 100,
        inactive_days: float = 0,
        email: str | None = None,
        phone: str = "",
        google: str = "",
        apple: str = "",
        now: datetime = NOW,
        warned_days_ago: float | None = None,
        **fields,
    ) -> LoyaltyCard:
        """`warned_days_ago`: the card got its warning for this cycle that long ago, as a
        run then would have sent it (the day it promised included)."""
        number = next(_numbers)
        customer = Customer.objects.create(
            name=f"Customer {number}",
            email=f"c{number}@example.com" if email is None else email,
            phone=phone,
        )
        activity = now - timedelta(days=inactive_days)
        if warned_days_ago is not None:
            warned_at = now - timedelta(days=warned_days_ago)
            fields |= {
                "last_expiration_warning_at": warned_at,
                "expiration_warning_cycle_at": activity,
                "points_expire_on": expiration_day(program, now=warned_at).promise(activity),
            }
        card = LoyaltyCard.objects.create(
            merchant=program.merchant,
            customer=customer,
            number=f"C{number:08d}",
            points_balance=points,
            last_activity_at=activity,
            google_object_id=google,
            apple_serial_number=apple,
            **fields,
        )
        if points:
            opening_balance(card, at=activity).save()
        return card

    return make


def earn(card: LoyaltyCard, points: int, *, at: datetime) -> None:
    """A sale recorded now (or uploaded late) dated `at`: a ledger row, the balance, and the
    last activity moved forward only (an offline sale dated earlier never moves it back)."""
    LoyaltyTransaction.objects.create(
        card=card,
        merchant_id=card.merchant_id,
        transaction_type=LoyaltyTransaction.Type.POINTS_EARNED,
        points_delta=points,
        points_balance_after=card.points_balance + points,
        stamps_balance_after=card.stamp_count,
        transaction_at=at,
    )
    LoyaltyCard.objects.filter(pk=card.pk).update(
        points_balance=F("points_balance") + points,
        last_activity_at=Greatest(F("last_activity_at"), Value(at)),
    )
    card.refresh_from_db()


def ledger_violations() -> list[tuple[int, int, int]]:
    """(card id, balance, ledger sum) of every card whose balance is not its ledger sum."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, c.points_balance, COALESCE(SUM(t.points_delta), 0)
              FROM loyalty_loyaltycard c
              LEFT JOIN loyalty_loyaltytransaction t ON t.card_id = c.id
             GROUP BY c.id
            HAVING c.points_balance <> COALESCE(SUM(t.points_delta), 0)
            """
        )
        return cursor.fetchall()


def points_expired_total() -> int:
    """Points the ledger records as expired, over every card (crash tests compare it to
    what was seeded: each card expired once, none twice)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT -COALESCE(SUM(points_delta), 0) FROM loyalty_loyaltytransaction"
            " WHERE transaction_type = 'points_expired'"
        )
        return cursor.fetchone()[0]


class SleepRecorder:
    """Injected instead of time.sleep: records the backoff delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.delays.append(seconds)


@pytest.fixture
def sleep_recorder() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def no_backoff_sleep(monkeypatch, sleep_recorder) -> SleepRecorder:
    """The wallet sync job's retries record their delays instead of sleeping them."""
    from loyalty.services.wallet_sync import sync_wallet_passes

    monkeypatch.setitem(sync_wallet_passes.__kwdefaults__, "sleep", sleep_recorder)
    return sleep_recorder


@pytest.fixture(scope="session")
def wallet_keys(tmp_path_factory) -> FakeKeys:
    """A service account key, a CA with pass and TLS certificates, an APNs key: made here."""
    return generate_keys(tmp_path_factory.mktemp("wallet-keys"))


@pytest.fixture
def fake_wallet(settings, wallet_keys) -> Iterator[WalletFakes]:
    """The fake Google Wallet (token endpoint + walletobjects) and the fake APNs (HTTP/2,
    TLS); settings point the real clients at them, as an operator's environment would."""
    with WalletFakes(wallet_keys) as fakes:
        for name, value in fakes.settings().items():
            setattr(settings, name, value)
        settings.LOYALTY_WALLET_TIMEOUT_SECONDS = 2.0
        yield fakes


@pytest.fixture
def register_device() -> Callable[..., AppleDeviceRegistration]:
    """An Apple device registered for a card's pass (as the PassKit web service records it)."""
    counter = itertools.count(1)

    def register(card: LoyaltyCard, push_token: str | None = None) -> AppleDeviceRegistration:
        n = next(counter)
        return AppleDeviceRegistration.objects.create(
            device_library_identifier=f"device{card.pk}x{n}",
            push_token=push_token or f"{card.pk:032x}{n:032x}",
            card=card,
        )

    return register
