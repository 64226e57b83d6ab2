"""SMS backends: a small interface with a console default and an HTTP provider."""

import logging
from typing import Protocol

import requests
from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("jobs.sms")


class SMSBackend(Protocol):
    def send(self, *, to: str, body: str) -> None:
        """Deliver one message or raise."""


class ConsoleSMSBackend:
    """Logs the message (development and demo)."""

    def send(self, *, to: str, body: str) -> None:
        logger.info("SMS to %s: %s", to, body)


class HTTPSMSBackend:
    """POSTs JSON {"to", "body"} to SMS_HTTP_URL with a bearer token; non-2xx raises."""

    def send(self, *, to: str, body: str) -> None:
        response = requests.post(
            settings.SMS_HTTP_URL,
            json={"to": to, "body": body},
            headers={"Authorization": f"Bearer {settings.SMS_HTTP_TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()


def get_sms_backend() -> SMSBackend:
    return import_string(settings.SMS_BACKEND)()
