"""Cart, token and audit retention: what goes, what stays, counted."""

import itertools
from datetime import timedelta

import pytest

from commerce.models import AuditLog, Cart, CartLine, ExpiringToken
from commerce.services.cleanup import (
    cleanup_expired_carts,
    cleanup_expired_tokens,
    cleanup_old_audit_logs,
)
from tests.commerce.conftest import NOW

pytestmark = pytest.mark.django_db


def make_cart(product, *, days_old: float, lines: int = 0) -> Cart:
    """A cart last changed `days_old` days ago (set after its lines: adding them moves it)."""
    cart = Cart.objects.create()
    CartLine.objects.bulk_create(CartLine(cart=cart, product=product) for _ in range(lines))
    Cart.objects.filter(pk=cart.pk).update(updated_at=NOW - timedelta(days=days_old))
    return cart


def test_carts__stale_deleted_with_lines_empty_first_fresh_kept(frozen_now, product_factory):
    product = product_factory()
    stale_empty = [make_cart(product, days_old=31) for _ in range(3)]
    stale_full = [make_cart(product, days_old=45, lines=2) for _ in range(2)]
    fresh = [make_cart(product, days_old=29, lines=1), make_cart(product, days_old=1)]

    result = cleanup_expired_carts(batch_size=2)

    assert result == {
        "older_than_days": 30,
        "empty_carts_deleted": 3,
        "carts_with_lines_deleted": 2,
        "lines_deleted": 4,
        "dry_run": False,
    }
    assert set(Cart.objects.values_list("pk", flat=True)) == {c.pk for c in fresh}
    assert CartLine.objects.count() == 1
    assert not Cart.objects.filter(pk__in=[c.pk for c in stale_empty + stale_full]).exists()


def test_carts__days_setting_and_dry_run(frozen_now, product_factory, settings):
    product = product_factory()
    make_cart(product, days_old=10)
    make_cart(product, days_old=10, lines=1)
    settings.COMMERCE_CART_RETENTION_DAYS = 7

    preview = cleanup_expired_carts(dry_run=True)

    assert preview == {
        "older_than_days": 7,
        "empty_carts": 1,
        "carts_with_lines": 1,
        "dry_run": True,
    }
    assert Cart.objects.count() == 2
    assert cleanup_expired_carts(older_than_days=11)["empty_carts_deleted"] == 0


_hashes = itertools.count(1)


def token(kind: str, *, expires_in_hours: float, used_hours_ago: float | None = None):
    return ExpiringToken.objects.create(
        kind=kind,
        token_hash=f"{next(_hashes):064x}",
        expires_at=NOW + timedelta(hours=expires_in_hours),
        used_at=None if used_hours_ago is None else NOW - timedelta(hours=used_hours_ago),
    )


def test_tokens__expired_and_used_over_a_day_ago_deleted_per_kind(frozen_now):
    token("password_reset", expires_in_hours=-1)
    token("password_reset", expires_in_hours=-0.01)
    token("one_time_code", expires_in_hours=5, used_hours_ago=25)
    kept = [
        token("email_verification", expires_in_hours=1),
        token("one_time_code", expires_in_hours=5, used_hours_ago=23),
    ]

    result = cleanup_expired_tokens(batch_size=1)

    assert result == {
        "deleted": 3,
        "per_kind": {"password_reset": 2, "email_verification": 0, "one_time_code": 1},
        "dry_run": False,
    }
    assert set(ExpiringToken.objects.values_list("pk", flat=True)) == {t.pk for t in kept}


def test_tokens__dry_run_counts_only(frozen_now):
    token("password_reset", expires_in_hours=-1)
    assert cleanup_expired_tokens(dry_run=True)["per_kind"]["password_reset"] == 1
    assert ExpiringToken.objects.count() == 1


def test_audit__older_than_90_days_deleted_in_batches(frozen_now):
    for days in (91, 95, 200, 89, 1):
        AuditLog.objects.create(
            actor="t",
            action="order.created",
            object_ref="order:1",
            created_at=NOW - timedelta(days=days),
        )

    assert cleanup_old_audit_logs(dry_run=True)["would_delete"] == 3
    result = cleanup_old_audit_logs(batch_size=2)

    assert result == {"older_than_days": 90, "deleted": 3, "dry_run": False}
    assert AuditLog.objects.count() == 2
