"""Razorpay-shaped webhook bodies and their signatures, for tests and the demo."""

import hashlib
import hmac
import json
from datetime import UTC, date, datetime


def charged_event(*, provider_subscription_id: str, billing_date: date, payment_id: str) -> dict:
    start = int(
        datetime(billing_date.year, billing_date.month, billing_date.day, tzinfo=UTC).timestamp()
    )
    return {
        "entity": "event",
        "account_id": "acc_test",
        "event": "subscription.charged",
        "contains": ["subscription", "payment"],
        "payload": {
            "subscription": {
                "entity": {
                    "id": provider_subscription_id,
                    "status": "active",
                    "current_start": start,
                }
            },
            "payment": {
                "entity": {
                    "id": payment_id,
                    "amount": 2500,
                    "currency": "INR",
                    "status": "captured",
                }
            },
        },
        "created_at": start,
    }


def failed_event(*, provider_subscription_id: str, payment_id: str) -> dict:
    return {
        "entity": "event",
        "event": "payment.failed",
        "payload": {
            "subscription": {"entity": {"id": provider_subscription_id}},
            "payment": {
                "entity": {
                    "id": payment_id,
                    "amount": 149900,
                    "currency": "INR",
                    "error_description": "Card declined by the bank",
                }
            },
        },
    }


def signed(payload: dict, secret: str) -> tuple[bytes, str]:
    """(raw body, X-Razorpay-Signature) computed here, not by the code under test."""
    body = json.dumps(payload).encode()
    return body, hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
