"""POST /webhooks/razorpay/: verify, store, answer at once (a job does the work)."""

import json
import logging

from django.db import DataError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from commerce.conf import commerce_settings
from commerce.services.webhooks import event_id_for, record_event, signature_is_valid

logger = logging.getLogger("commerce.webhooks")


@csrf_exempt  # the provider signs the body instead; there is no session to forge
@require_POST
def razorpay_webhook(request: HttpRequest) -> JsonResponse:
    """400 and nothing stored for a bad or missing signature; 200 for new and replayed events."""
    secret = str(commerce_settings.RAZORPAY_WEBHOOK_SECRET)
    if not secret:
        logger.error("COMMERCE_RAZORPAY_WEBHOOK_SECRET is not set: webhook refused")
        return JsonResponse({"error": "webhook not configured"}, status=503)
    body = request.body
    if not signature_is_valid(body, request.headers.get("X-Razorpay-Signature"), secret):
        logger.warning("razorpay webhook with a bad or missing signature refused")
        return JsonResponse({"error": "bad signature"}, status=400)
    try:
        payload = json.loads(body)
        event_type = payload["event"]
        if not isinstance(event_type, str) or not event_type.isprintable():
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        return JsonResponse({"error": "not a JSON event with an 'event' field"}, status=400)
    event_id = event_id_for(body, request.headers.get("X-Razorpay-Event-Id"))
    if event_id is None:
        return JsonResponse(
            {"error": "X-Razorpay-Event-Id must be printable ASCII, at most 128 characters"},
            status=400,
        )
    try:
        _pk, created = record_event(event_id=event_id, event_type=event_type, payload=payload)
    except DataError:  # e.g. a NUL character, which jsonb refuses
        return JsonResponse({"error": "payload cannot be stored"}, status=400)
    return JsonResponse(
        {"status": "accepted" if created else "duplicate", "event": event_id}, status=200
    )
