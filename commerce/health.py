"""The storefront's /health/ line: orders left unpaid past the grace period (a warning)."""

from commerce.conf import commerce_settings
from commerce.models import Order
from commerce.services.orders import awaiting_payment_q
from jobs.health.checks import Check


def check_unpaid_orders() -> Check:
    """Warn while orders wait for a charge longer than COMMERCE_UNPAID_GRACE_DAYS."""
    count = Order.objects.filter(awaiting_payment_q()).count()
    if count:
        return Check(
            "commerce_unpaid_orders",
            False,
            f"{count} order(s) unpaid for more than {commerce_settings.UNPAID_GRACE_DAYS} day(s)"
            " (admin Orders, filter 'awaiting payment'; check the provider's dashboard)",
            warning=True,
        )
    return Check("commerce_unpaid_orders", True, "")
