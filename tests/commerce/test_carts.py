"""Cart.updated_at moves on any change to a cart or its lines, bulk writes included
(database triggers), so the 30-day clean-up never deletes a cart in use."""

from datetime import timedelta

import pytest
from django.utils import timezone

from commerce.models import Cart, CartLine
from commerce.services.cleanup import cleanup_expired_carts

pytestmark = pytest.mark.django_db


def old_cart(product, *, days: int = 31, lines: int = 1) -> Cart:
    cart = Cart.objects.create()
    CartLine.objects.bulk_create(CartLine(cart=cart, product=product) for _ in range(lines))
    Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return cart


def test_31_day_cart_given_a_line_today__survives_the_cleanup(product_factory):
    product = product_factory()
    kept, forgotten = old_cart(product), old_cart(product)

    CartLine.objects.create(cart=kept, product=product)
    result = cleanup_expired_carts()

    assert list(Cart.objects.values_list("pk", flat=True)) == [kept.pk]
    assert result["carts_with_lines_deleted"] == 1
    assert not Cart.objects.filter(pk=forgotten.pk).exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda cart, product: CartLine.objects.filter(cart=cart).update(quantity=3),
        lambda cart, product: CartLine.objects.filter(cart=cart).delete(),
        lambda cart, product: CartLine.objects.bulk_create(
            [CartLine(cart=cart, product=product)] * 2
        ),
        lambda cart, product: Cart.objects.filter(pk=cart.pk).update(customer=None),
        lambda cart, product: cart.save(),
    ],
    ids=["bulk_update_lines", "bulk_delete_lines", "bulk_create_lines", "cart_update", "save"],
)
def test_any_write_to_a_cart_or_its_lines__moves_updated_at(product_factory, change):
    product = product_factory()
    cart = old_cart(product, lines=2)
    before = Cart.objects.get(pk=cart.pk).updated_at

    change(Cart.objects.get(pk=cart.pk), product)

    after = Cart.objects.get(pk=cart.pk).updated_at
    assert after > before and after > timezone.now() - timedelta(minutes=5)


def test_other_carts_untouched_by_a_bulk_write(product_factory):
    product = product_factory()
    changed, other = old_cart(product), old_cart(product)
    before = Cart.objects.get(pk=other.pk).updated_at

    CartLine.objects.filter(cart=changed).update(quantity=2)

    assert Cart.objects.get(pk=other.pk).updated_at == before
