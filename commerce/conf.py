"""Settings of the commerce app, read lazily: `settings.COMMERCE_<NAME>`, else env, else default."""

import os

from django.conf import settings

_DEFAULTS: dict[str, object] = {
    #: Carts not updated for this many days are deleted by commerce.cleanup_expired_carts.
    "CART_RETENTION_DAYS": 30,
    #: Audit rows older than this many days are deleted by commerce.cleanup_old_audit_logs.
    "AUDIT_RETENTION_DAYS": 90,
    #: Used tokens are kept this many hours after use (then deleted with the expired ones).
    "USED_TOKEN_HOURS": 24,
    #: Deliveries per chunk of commerce.process_due_subscriptions (one statement each).
    "SUBSCRIPTION_CHUNK_SIZE": 2000,
    #: Razorpay webhook secret (secret: settings or env only; never logged or shown).
    "RAZORPAY_WEBHOOK_SECRET": "",
}


def commerce_setting(name: str) -> object:
    """The value of COMMERCE_<name>, typed like its default."""
    default = _DEFAULTS[name]
    value = getattr(settings, f"COMMERCE_{name}", None)
    if value is None:
        value = os.environ.get(f"COMMERCE_{name}")
    if value is None or value == "":
        return default
    return type(default)(value)
