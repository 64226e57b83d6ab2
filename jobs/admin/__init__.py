"""The core's admin pages; Django's admin imports this module to register them."""

from jobs.admin import alerts, leases, outbox, queue, runs  # noqa: F401 - they register their pages
