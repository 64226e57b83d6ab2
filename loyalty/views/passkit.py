"""Apple's PassKit web service: what Wallet on a device calls for our passes.

Paths below `webServiceURL` (LOYALTY_APPLE_WEB_SERVICE_URL, e.g. https://host/passkit/):
register and unregister a device for a pass, list the device's passes changed since a
tag, fetch a pass's latest signed .pkpass, and the log endpoint. Calls about one pass
carry `Authorization: ApplePass <its authentication token>`; a wrong or missing token
and an unknown serial get the same 401, so serial numbers cannot be probed. Anyone can
call these URLs: junk (bad ids, tags, bodies) gets a 4xx that says nothing, never a 500.
"""

import json
import logging
import re
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from loyalty.conf import loyalty_settings
from loyalty.exceptions import WalletNotConfigured
from loyalty.models import AppleDeviceRegistration, LoyaltyCard, WalletSyncState
from loyalty.services.apple_devices import Registered, register_device, unregister_device
from loyalty.services.apple_passes import PassContent, PassSigner, build_pkpass, token_matches
from loyalty.services.device_log import write_device_log

logger = logging.getLogger("loyalty.passkit")
#: Matched in full (re.fullmatch): "$" would let a trailing newline through.
_PUSH_TOKEN = re.compile(r"[0-9a-fA-F]{8,200}")
_DEVICE_ID = re.compile(r"[0-9A-Za-z-]{1,128}")
#: Our update tags are bigint sequence values: at most 18 digits always fit.
_TAG = re.compile(r"[0-9]{1,18}")
#: Bodies larger than this are refused unread (a registration is one push token).
MAX_REGISTRATION_BODY_BYTES, MAX_LOG_BODY_BYTES = 4096, 64 * 1024


def _json_object(request: HttpRequest, *, max_bytes: int) -> dict[str, Any] | None:
    """The body as a JSON object, or None when too large, not JSON, too deep or not an object."""
    try:
        # The announced length first: a body announced too large is never read.
        if int(request.headers.get("Content-Length") or 0) > max_bytes:
            return None
        if len(request.body) > max_bytes:
            return None
        data = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _presented_token(request: HttpRequest) -> str:
    return request.headers.get("Authorization", "").removeprefix("ApplePass ").strip()


def _authorized_card(request: HttpRequest, pass_type: str, serial: str) -> LoyaltyCard | None:
    header = request.headers.get("Authorization", "")
    if pass_type != loyalty_settings.APPLE_PASS_TYPE_ID or not header.startswith("ApplePass "):
        return None
    if not token_matches(serial, _presented_token(request)):
        return None
    # A deactivated card's pass is still served: it must reach the devices as voided.
    return LoyaltyCard.objects.filter(apple_serial_number=serial).select_related("merchant").first()


@csrf_exempt
@require_http_methods(["POST", "DELETE"])
def registration_view(
    request: HttpRequest, device: str, pass_type: str, serial: str
) -> HttpResponse:
    """POST: the device wants pushes for this pass (201 new, 200 known). DELETE: no more."""
    card = _authorized_card(request, pass_type, serial)
    if card is None:
        return HttpResponse(status=401)
    if not _DEVICE_ID.fullmatch(device):
        return HttpResponse(status=400)
    if request.method == "DELETE":
        unregister_device(card_id=card.pk, device_library_identifier=device)
        return HttpResponse(status=200)
    body = _json_object(request, max_bytes=MAX_REGISTRATION_BODY_BYTES)
    push_token = body.get("pushToken") if body is not None else None
    if not isinstance(push_token, str) or not _PUSH_TOKEN.fullmatch(push_token):
        return HttpResponse(status=400)
    registered = register_device(
        card_id=card.pk, device_library_identifier=device, push_token=push_token
    )
    # Past the devices allowed per pass: a standard refusal, as Apple's spec allows.
    status = {Registered.CREATED: 201, Registered.KNOWN: 200, Registered.FULL: 403}
    return HttpResponse(status=status[registered])


@require_GET
def updated_passes_view(request: HttpRequest, device: str, pass_type: str) -> HttpResponse:
    """Serial numbers of the device's passes announced after `passesUpdatedSince` (204: none)."""
    if pass_type != loyalty_settings.APPLE_PASS_TYPE_ID:
        return HttpResponse(status=404)
    tag = request.GET.get("passesUpdatedSince", "")
    if not _DEVICE_ID.fullmatch(device) or (tag and not _TAG.fullmatch(tag)):
        return HttpResponse(status=400)
    cards = AppleDeviceRegistration.objects.filter(device_library_identifier=device).values(
        "card_id"
    )
    if not cards.exists():  # an unknown device has no passes of ours
        return HttpResponse(status=204)
    since = int(tag) if tag else 0
    # The serials and the tag they reach in one statement: a tag announced between two
    # reads would be passed without its serial.
    announced = dict(
        WalletSyncState.objects.filter(
            card_id__in=cards, wallet=WalletSyncState.Wallet.APPLE, published_tag__gt=since
        ).values_list("card__apple_serial_number", "published_tag")
    )
    serials = sorted(announced)
    if not tag:  # the device's first question: all its passes
        serials = sorted(
            LoyaltyCard.objects.filter(pk__in=cards).values_list("apple_serial_number", flat=True)
        )
    if not serials:
        return HttpResponse(status=204)
    last = max(announced.values(), default=since)
    return JsonResponse({"serialNumbers": serials, "lastUpdated": str(last)})


@require_GET
def latest_pass_view(request: HttpRequest, pass_type: str, serial: str) -> HttpResponse:
    """The pass as it is now, signed with the pass type certificate; 304 Not Modified (no
    signing) when `If-Modified-Since` is not older than the pass content's Last-Modified."""
    card = _authorized_card(request, pass_type, serial)
    if card is None:
        return HttpResponse(status=401)
    modified = int(card.pass_updated_at.timestamp())  # HTTP dates have whole seconds
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    if since is not None and since >= modified:
        response = HttpResponse(status=304)
        response["Last-Modified"] = http_date(modified)
        return response
    try:
        signer = PassSigner.from_settings()
    except WalletNotConfigured as exc:
        logger.error("cannot sign pass %s: %s", serial, exc)
        return HttpResponse(status=503)
    content = PassContent(
        serial_number=serial,
        number=card.number,
        points_balance=card.points_balance,
        stamp_count=card.stamp_count,
        organization_name=card.merchant.name or loyalty_settings.APPLE_ORGANIZATION_NAME,
        voided=not card.is_active,
        # The token the device's pass carries, even one of a key rotated out since.
        authentication_token=_presented_token(request),
    )
    response = HttpResponse(
        build_pkpass(content, signer=signer), content_type="application/vnd.apple.pkpass"
    )
    response["Last-Modified"] = http_date(modified)
    return response


@csrf_exempt
@require_POST
def log_view(request: HttpRequest) -> HttpResponse:
    """Devices report what went wrong with our web service here: into our log, escaped,
    cut short and limited in rate (loyalty.services.device_log)."""
    body = _json_object(request, max_bytes=MAX_LOG_BODY_BYTES)
    lines = body.get("logs") if body is not None else None
    if not isinstance(lines, list):
        return HttpResponse(status=400)
    write_device_log(lines)
    return HttpResponse(status=200)
