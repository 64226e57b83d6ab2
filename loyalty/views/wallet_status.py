"""/wallet-status/: the runbook's "check the wallet-status endpoint" (staff only, JSON)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from loyalty.services.wallet_status import (
    FRESH_EVERY_SECONDS,
    State,
    allow_fresh_probe,
    wallet_statuses,
)

#: The problems name hosts and error text: for staff who may read the cards.
VIEW_PERMISSION = "loyalty.view_loyaltycard"


@require_GET
@staff_member_required
def wallet_status_view(request: HttpRequest) -> JsonResponse:
    """Per wallet: OK, WARN or FAIL and why, cards behind, last success, the last run (no
    secret), for staff with VIEW_PERMISSION. `?fresh=1` calls Google and Apple: it needs loyalty.probe_wallets and is
    granted at most once per FRESH_EVERY_SECONDS (otherwise `fresh: false`)."""
    if not request.user.has_perm(VIEW_PERMISSION):  # a staff login alone opens nothing
        return JsonResponse({"error": f"needs the permission {VIEW_PERMISSION}"}, status=403)
    fresh = request.GET.get("fresh") == "1"
    if fresh and not request.user.has_perm("loyalty.probe_wallets"):
        return JsonResponse(
            {"error": "fresh=1 needs the permission loyalty.probe_wallets"}, status=403
        )
    granted = fresh and allow_fresh_probe()
    statuses = wallet_statuses(fresh=granted)
    states = {s.state for s in statuses}
    worst = next(s for s in (State.FAIL, State.WARN, State.OK) if s in states or s == State.OK)
    return JsonResponse(
        {
            "ok": worst == State.OK,
            "state": worst.value,
            "fresh": granted,
            "fresh_every_seconds": FRESH_EVERY_SECONDS,
            "wallets": {s.wallet: s.as_dict() for s in statuses},
            "lines": [s.line() for s in statuses],
        }
    )
