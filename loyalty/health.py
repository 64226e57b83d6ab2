"""The `wallets` health check (jobs_health, /health/): a warning, never unhealthy.

A wallet problem must not take the web app out of a load balancer: it is shown
(WARN) with the fix, and the sync run that meets it is flagged for attention.
"""

from jobs.services.health import Check
from loyalty.services.wallet_status import wallet_statuses


def check_wallets() -> Check:
    try:
        statuses = wallet_statuses()
    except Exception as exc:  # a health page never crashes on one check
        return Check("wallets", False, f"cannot read wallet status: {exc}", warning=True)
    detail = " | ".join(s.line() for s in statuses)
    if all(s.ok for s in statuses):
        return Check("wallets", True, detail)
    return Check("wallets", False, f"{detail} (see docs/loyalty.md, wallet setup)", warning=True)
