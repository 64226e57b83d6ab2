"""Factories for exchanges tests: overridable defaults, committed rows on real PostgreSQL."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from exchanges.models import Exchange, Participant


@pytest.fixture
def make_exchange() -> Callable[..., Exchange]:
    def make(**fields) -> Exchange:
        fields.setdefault("name", "Office party")
        fields.setdefault("organizer_email", "organizer@example.com")
        fields.setdefault("timezone", "America/New_York")
        fields.setdefault("exchange_at", datetime(2026, 12, 18, 23, 0, tzinfo=UTC))
        return Exchange.objects.create(**fields)

    return make


@pytest.fixture
def make_participants() -> Callable[..., list[Participant]]:
    def make(exchange: Exchange, count: int, prefix: str = "person", **fields) -> list[Participant]:
        return Participant.objects.bulk_create(
            Participant(
                exchange=exchange,
                name=f"{prefix.title()} {i}",
                email=f"{prefix}{i}.x{exchange.pk}@example.com",
                **fields,
            )
            for i in range(count)
        )

    return make
