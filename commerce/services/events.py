"""A provider event's body checked once, into the few typed fields we act on.

A signed body is still data from outside: anything we cannot use raises BadEvent naming
the field, so the event is recorded `failed` at once, never a crash that retries.
"""

from dataclasses import dataclass
from typing import Any

from commerce.exceptions import BadEvent

#: Unix seconds we accept as a billing time: 2000-01-01 to 2100-01-01 UTC.
_EARLIEST, _LATEST = 946_684_800, 4_102_444_800
#: The largest amount (in the currency's smallest unit) we accept: 10**12.
_MAX_AMOUNT = 10**12
_MAX_TEXT = 255


@dataclass(frozen=True, kw_only=True)
class ProviderEvent:
    """The fields of a Razorpay event that we use; absent ones are empty or None."""

    #: The provider's subscription id (`sub_...`): payload.subscription.entity.id, else the
    #: payment's subscription_id.
    subscription_id: str = ""
    #: The billing cycle (Unix seconds): payload.subscription.entity.current_start / _end.
    cycle_start: int | None = None
    cycle_end: int | None = None
    #: payload.payment.entity: id, amount (smallest unit), currency, error, email.
    payment_id: str = ""
    amount: int | None = None
    currency: str = "INR"
    error_description: str = ""
    email: str = ""
    #: When the provider created the event (Unix seconds, the body's created_at).
    created_at: int | None = None


def parse_event(body: Any) -> ProviderEvent:
    """The event's fields, checked; BadEvent names the first one we cannot use."""
    if not isinstance(body, dict):
        raise BadEvent("the event is not a JSON object")
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        raise BadEvent("payload is not an object")
    subscription = _entity(payload, "subscription")
    payment = _entity(payload, "payment")
    return ProviderEvent(
        subscription_id=_text(subscription, "subscription", "id", limit=64)
        or _text(payment, "payment", "subscription_id", limit=64),
        cycle_start=_timestamp(subscription, "current_start", "payload.subscription.entity."),
        cycle_end=_timestamp(subscription, "current_end", "payload.subscription.entity."),
        payment_id=_text(payment, "payment", "id", limit=64),
        amount=_amount(payment),
        currency=_text(payment, "payment", "currency", limit=8) or "INR",
        error_description=_text(payment, "payment", "error_description"),
        email=_text(payment, "payment", "email"),
        created_at=_timestamp(body, "created_at", ""),
    )


def _entity(payload: dict[str, Any], name: str) -> dict[str, Any]:
    wrapper = payload.get(name)
    if wrapper is None:
        return {}
    entity = wrapper.get("entity") if isinstance(wrapper, dict) else None
    if not isinstance(entity, dict):
        raise BadEvent(f"payload.{name}.entity is not an object")
    return entity


def _text(entity: dict[str, Any], name: str, key: str, *, limit: int = _MAX_TEXT) -> str:
    value = entity.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise BadEvent(f"payload.{name}.entity.{key} is not text of at most {limit} characters")
    return value


def _timestamp(entity: dict[str, Any], key: str, where: str) -> int | None:
    value = entity.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not (_EARLIEST <= value < _LATEST):
        shown = repr(value)[:40]
        raise BadEvent(
            f"{where}{key} {shown} is not a time (whole Unix seconds between 2000 and 2100)"
        )
    return value


def _amount(entity: dict[str, Any]) -> int | None:
    value = entity.get("amount")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_AMOUNT:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:20] + "..."
        raise BadEvent(
            f"payload.payment.entity.amount {shown} is not an amount"
            f" (a whole number of the smallest unit, 0 to {_MAX_AMOUNT})"
        )
    return value
