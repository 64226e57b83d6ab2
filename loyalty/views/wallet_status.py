"""/wallet-status/: the runbook's "check the wallet-status endpoint" (staff only, JSON)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from loyalty.services.wallet_status import wallet_statuses


@require_GET
@staff_member_required
def wallet_status_view(request: HttpRequest) -> JsonResponse:
    """Per wallet: credentials configured and accepted, cards behind, last run's failures.

    No secret is in it: only whether the credentials work, counts and run ids.
    `?fresh=1` asks the wallets now instead of reusing the last minute's answer.
    """
    statuses = wallet_statuses(fresh=request.GET.get("fresh") == "1")
    return JsonResponse(
        {
            "ok": all(s.ok for s in statuses),
            "wallets": {s.wallet: s.as_dict() for s in statuses},
            "lines": [s.line() for s in statuses],
        }
    )
