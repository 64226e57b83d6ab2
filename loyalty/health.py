"""The `wallets` health check (jobs_health, /health/): a warning, never unhealthy.

A wallet problem must not take the web app out of a load balancer: it is shown
(WARN) with the fix, and the sync run that meets it is flagged for attention.
The check's answer is kept CACHE_SECONDS: /health/ may be polled every few seconds,
and counting the cards behind reads every card with a pass.
"""

import logging
import time

from jobs.health.checks import Check
from loyalty.services.wallet_clients import wallet_clients
from loyalty.services.wallet_status import wallet_statuses

logger = logging.getLogger("loyalty.health")
CACHE_SECONDS = 60.0
#: (id of the wallet clients, monotonic time, the check)
_last: tuple[int, float, Check] | None = None


def check_wallets() -> Check:
    global _last
    key = id(wallet_clients())  # new settings, new clients: a fresh answer
    if _last and _last[0] == key and time.monotonic() - _last[1] < CACHE_SECONDS:
        return _last[2]
    try:
        statuses = wallet_statuses()
    except Exception as exc:  # a health page never crashes on one check
        # The exception's text is for staff and the log, not the anonymous page.
        logger.exception("health: cannot read wallet status")
        return Check(
            "wallets",
            False,
            "cannot read wallet status (see the log)",
            warning=True,
            error=f"{type(exc).__name__}: {exc}",
        )
    detail = " | ".join(s.line() for s in statuses)
    if all(s.ok for s in statuses):
        check = Check("wallets", True, detail)
    else:
        check = Check(
            "wallets", False, f"{detail} (see docs/loyalty.md, wallet setup)", warning=True
        )
    _last = (key, time.monotonic(), check)
    return check
