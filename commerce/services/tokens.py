"""Expiring tokens (password reset, email verification, one-time codes): only the token's
sha256 is stored, so a database leak gives no usable token.
"""

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from commerce.models import Customer, ExpiringToken


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(*, kind: str, customer: Customer | None, ttl_seconds: int) -> str:
    """Create a token of `kind` valid for `ttl_seconds`; returns the raw token (not stored)."""
    if kind not in ExpiringToken.Kind.values:
        raise ValueError(f"unknown token kind {kind!r}")
    raw = secrets.token_urlsafe(32)
    ExpiringToken.objects.create(
        kind=kind,
        customer=customer,
        token_hash=token_hash(raw),
        expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
    )
    return raw


def use_token(*, kind: str, raw: str) -> ExpiringToken | None:
    """Mark the token used and return it; None when unknown, expired or used already.

    One conditional UPDATE: two requests with the same token cannot both use it.
    """
    now = timezone.now()
    digest = token_hash(raw)
    used = ExpiringToken.objects.filter(
        kind=kind, token_hash=digest, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    return ExpiringToken.objects.get(token_hash=digest) if used else None
