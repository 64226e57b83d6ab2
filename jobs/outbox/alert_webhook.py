"""The alert webhook: JOBS_ALERT_WEBHOOK_URL is the credential (its path is the secret), read
at delivery, never stored, logged or rendered; a redirect is not followed."""

import requests
from django.conf import settings

from jobs.conf import jobs_settings
from jobs.validators import AddressProblem, split_operator_url


class WebhookRefused(Exception):
    """The alert webhook is not configured, not allowed, or did not accept the alert."""


def webhook_url_problem(value: str) -> str | None:
    """Why `value` may not be the alert webhook, or None when it may."""
    try:
        parts = split_operator_url(
            value,
            what="JOBS_ALERT_WEBHOOK_URL",
            schemes=("https", "http") if settings.DEBUG else ("https",),
            require_host=True,
        )
    except AddressProblem as exc:
        return str(exc)
    if parts.username is not None or parts.password is not None:
        return "JOBS_ALERT_WEBHOOK_URL must not carry a user name or password"
    return None


def post_alert_webhook(body: str) -> None:
    """POST one alert (a JSON body from the outbox); raise unless it was accepted (2xx)."""
    url = str(jobs_settings.ALERT_WEBHOOK_URL)
    problem = webhook_url_problem(url) if url else "JOBS_ALERT_WEBHOOK_URL is not set"
    if problem:
        raise WebhookRefused(problem)
    try:
        response = requests.post(
            url,
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            timeout=10,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        # requests' message names the URL (the secret): the type says enough.
        raise WebhookRefused(f"the alert webhook is unreachable: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        # The status only: the URL (a secret) must not reach last_error or the log.
        raise WebhookRefused(f"the alert webhook answered HTTP {response.status_code}")
