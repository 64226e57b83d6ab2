"""Settings of the commerce app (`COMMERCE_*`), read lazily: Django settings, else environment.

The webhook secret may come from the environment (platforms pass secrets that way); a
Django setting wins.
"""

from jobs.conf import AppSettings, Setting


class CommerceSettings(AppSettings):
    prefix = "COMMERCE"
    settings = {
        #: Carts not updated for this many days are deleted by commerce.cleanup_expired_carts.
        "CART_RETENTION_DAYS": Setting(30, env=True),
        #: Audit rows older than this many days are deleted by commerce.cleanup_old_audit_logs.
        "AUDIT_RETENTION_DAYS": Setting(90, env=True),
        #: Used tokens are kept this many hours after use (then deleted with the expired ones).
        "USED_TOKEN_HOURS": Setting(24, env=True, zero_ok=True),
        #: Deliveries per chunk of commerce.process_due_subscriptions (one transaction each).
        "SUBSCRIPTION_CHUNK_SIZE": Setting(2000, env=True),
        #: The store's timezone: it decides "today" for due dates, the reminder day and the
        #: delivery a charge's billing cycle covers.
        "TIME_ZONE": Setting("UTC", env=True),
        #: Orders still unpaid this many days after they were made are "awaiting payment"
        #: (admin filter, /health/ warning).
        "UNPAID_GRACE_DAYS": Setting(3, env=True, zero_ok=True),
        #: Razorpay webhook secret (secret: settings or env only; never logged or shown).
        "RAZORPAY_WEBHOOK_SECRET": Setting("", env=True),
    }


commerce_settings = CommerceSettings()
