"""Reliability helpers: bulk seeding in SQL, aging out a killed run's lease, a checkpoint sampler."""

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connection, connections
from django.db.models import Count
from hypothesis import settings as hypothesis_settings

from bibliotheca.models import LicensePool
from tests.bibliotheca import conftest as bibliotheca_fixtures

# The Bibliotheca simulator and collection fixtures (each test module picks its catalogue).
catalogue = bibliotheca_fixtures.catalogue
simulator = bibliotheca_fixtures.simulator
make_collection = bibliotheca_fixtures.make_collection
collection = bibliotheca_fixtures.collection
quick_request_retries = bibliotheca_fixtures.quick_request_retries


# No example database under the work tree: every run starts from the strategies.
hypothesis_settings.register_profile("reliability", database=None)
hypothesis_settings.load_profile("reliability")


def say(message: str) -> None:
    """What a reliability test did and verified (visible with `pytest -s`)."""
    print(f"[reliability] {message}", flush=True)


def execute(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def seed_due_cards(cards: int, *, expiration_days: int = 365):
    """One program and `cards` cards inactive 380..399 days (real clock), one earn row each,
    each warned 20 days ago for this cycle (the run expires only warned cards)."""
    from loyalty.models import LoyaltyProgram, Merchant

    merchant = Merchant.objects.create(name="Crash Coffee")
    program = LoyaltyProgram.objects.create(
        merchant=merchant, name="Crash points", points_expiration_days=expiration_days
    )
    execute(
        "INSERT INTO loyalty_customer (name, email, phone)"
        " SELECT 'Customer ' || g, 'c' || g || '@example.com', '' FROM generate_series(1, %s) g",
        [cards],
    )
    execute(
        "INSERT INTO loyalty_loyaltycard (merchant_id, customer_id, number, points_balance,"
        " stamp_count, total_points_voided, last_activity_at, is_active,"
        " google_object_id, apple_serial_number)"
        " SELECT %s, cu.id, 'R' || lpad(cu.id::text, 9, '0'), 1 + cu.id %% 997, 0, 0,"
        "        date_trunc('second', now()) - make_interval(days => 380 + (cu.id %% 20)::int,"
        "                                                   secs => cu.id %% 3600),"
        "        true, '', ''"
        "   FROM loyalty_customer cu",
        [merchant.pk],
    )
    execute(
        "UPDATE loyalty_loyaltycard SET last_expiration_warning_at = now() - interval '20 days',"
        " expiration_warning_cycle_at = last_activity_at,"
        " points_expire_on = (now() AT TIME ZONE 'UTC')::date - 14"
        " WHERE merchant_id = %s",
        [program.merchant_id],
    )
    execute(
        "INSERT INTO loyalty_loyaltytransaction (card_id, merchant_id, transaction_type,"
        " points_delta, points_balance_after, stamps_delta, stamps_balance_after, notes,"
        " transaction_at)"
        " SELECT id, merchant_id, 'points_earned', points_balance, points_balance, 0, 0, '',"
        "        last_activity_at FROM loyalty_loyaltycard"
    )
    execute("ANALYZE loyalty_loyaltycard")
    execute("ANALYZE loyalty_loyaltytransaction")
    return program


def wait_for_lock_free(lease_key: str) -> None:
    """A killed worker's lock frees when the server ends its session (about a second)."""
    from jobs.runs import lifecycle

    poll(lambda: not lifecycle.lease_held(lease_key), timeout=10, what=f"{lease_key} to free")


class Sampler:
    """Reads `probe()` every `interval` seconds in a thread (its own DB connection)."""

    def __init__(self, probe: Callable[[], object], interval: float = 0.05) -> None:
        self.probe = probe
        self.interval = interval
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.samples.append(self.probe())
                time.sleep(self.interval)
        finally:
            connections.close_all()

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def values(self) -> list:
        """The samples that read something (a probe returns None before there is a value)."""
        return [s for s in self.samples if s is not None]

    def backwards(self) -> list[tuple]:
        """Each (earlier, later) pair of consecutive values where the later is smaller."""
        values = self.values()
        return [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]


def duplicate_pools() -> int:
    """(collection, identifier) pairs with more than one LicensePool: an import applied twice."""
    return (
        LicensePool.objects.values("collection_id", "identifier_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )


@pytest.fixture
def sampler() -> Iterator[type[Sampler]]:
    yield Sampler


def poll(predicate: Callable[[], object], *, timeout: float, what: str, every: float = 0.05):
    """Fast polling (the crash tests must catch a run in the middle)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# The loyalty factories and the real-HTTP fake wallet.
from tests.loyalty import conftest as loyalty_fixtures  # noqa: E402

program_factory = loyalty_fixtures.program_factory
card_factory = loyalty_fixtures.card_factory
sleep_recorder = loyalty_fixtures.sleep_recorder
fake_wallet = loyalty_fixtures.fake_wallet
wallet_keys = loyalty_fixtures.wallet_keys
