"""Loyalty fixtures: factories that keep the ledger invariant, a frozen clock, the fake wallet."""

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.template import engines as template_engines

from loyalty.fake_wallet import FakeWallet, Faults
from loyalty.models import Customer, LoyaltyCard, LoyaltyProgram, LoyaltyTransaction, Merchant

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
    def make(*, expiration_days: int | None = 365, is_active: bool = True) -> LoyaltyProgram:
        merchant = Merchant.objects.create(name=f"Merchant {next(_numbers)}")
        return LoyaltyProgram.objects.create(
            merchant=merchant,
            name=f"{merchant.name} points",
            is_active=is_active,
            points_expiration_days=expiration_days,
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
        **fields,
    ) -> LoyaltyCard:
        number = next(_numbers)
        customer = Customer.objects.create(
            name=f"Customer {number}",
            email=f"c{number}@example.com" if email is None else email,
            phone=phone,
        )
        activity = now - timedelta(days=inactive_days)
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
            LoyaltyTransaction.objects.create(
                card=card,
                merchant=program.merchant,
                transaction_type=LoyaltyTransaction.Type.POINTS_EARNED,
                points_delta=points,
                points_balance_after=points,
                transaction_at=activity,
            )
        return card

    return make


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
def fake_wallet(settings) -> Iterator[FakeWallet]:
    """A real HTTP fake of both wallets; settings point the clients at it."""
    with FakeWallet(faults=Faults()) as wallet:
        settings.LOYALTY_GOOGLE_WALLET_URL = wallet.base_url
        settings.LOYALTY_APPLE_WALLET_URL = wallet.base_url
        settings.LOYALTY_GOOGLE_WALLET_TOKEN = "google-test-token"
        settings.LOYALTY_APPLE_WALLET_TOKEN = "apple-test-token"
        settings.LOYALTY_WALLET_TIMEOUT_SECONDS = 2.0
        yield wallet
