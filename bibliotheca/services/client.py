"""Signed requests to the cloudLibrary partner API: one MARC page, one batch of items.
Every failure names the collection and the window (or ids), as one of the classes in
bibliotheca.exceptions."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

import pymarc
import requests
from django.utils import timezone
from tenacity import (
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.wait import wait_random_exponential

from bibliotheca.conf import PAGE_SIZE, bibliotheca_settings
from bibliotheca.exceptions import (
    AddressNotAllowed,
    BadResponse,
    RateLimited,
    RemoteIntegrationError,
    RequestTimedOut,
)
from bibliotheca.services.items import parse_items
from bibliotheca.services.pages import parse_marc_page, xml_root
from bibliotheca.services.signing import signed_headers
from bibliotheca.validators import api_address_problem

logger = logging.getLogger("bibliotheca")

WINDOW_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class Credentials:
    """What a request needs from a Collection; the key is never in its repr."""

    #: Collection name, used in error messages.
    name: str
    base_url: str
    library_id: str
    account_id: str
    account_key: str = field(repr=False)


class RateGate:
    """Shared by the clients of one hop: after a 429, no request goes out before its
    Retry-After. A short wait (BIBLIOTHECA_RETRY_AFTER_MAX_SECONDS) is slept through; a
    longer one raises RateLimited without a request (the chain re-queues its hop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0  # time.monotonic()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def wait(self, message: str) -> None:
        with self._lock:
            remaining = max(0.0, self._not_before - time.monotonic())
        if remaining > bibliotheca_settings.RETRY_AFTER_MAX_SECONDS:
            raise RateLimited(message, retry_after=remaining)
        if remaining > 0:
            time.sleep(remaining)


class BibliothecaClient:
    """A requests session signing every call for one collection."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout_seconds: float | None = None,
        gate: RateGate | None = None,
    ) -> None:
        self.credentials = credentials
        # An address the model would refuse (a row stored before its validators) is
        # refused here too.
        if problem := api_address_problem(
            base_url=credentials.base_url, library_id=credentials.library_id
        ):
            raise AddressNotAllowed(
                f"Bibliotheca collection {credentials.name!r}: {problem}; no request sent"
            )
        self.timeout_seconds = timeout_seconds or bibliotheca_settings.REQUEST_TIMEOUT_SECONDS
        self.session = requests.Session()
        self.gate = gate or RateGate()

    @classmethod
    def for_collection(cls, collection, **kwargs) -> "BibliothecaClient":
        values = {f.name: getattr(collection, f.name) for f in fields(Credentials)}
        return cls(Credentials(**values), **kwargs)

    def fetch_marc_page(
        self, *, start: datetime, end: datetime, offset: int
    ) -> list[pymarc.Record]:
        """Purchase records in [start, end), `offset` 1-based, a page of PAGE_SIZE at most.
        The API's window has no zone and is UTC: a moment typed in another zone is converted."""
        query = {
            "startdate": start.astimezone(UTC).strftime(WINDOW_FORMAT),
            "enddate": end.astimezone(UTC).strftime(WINDOW_FORMAT),
            "offset": offset,
            "limit": PAGE_SIZE,
        }
        what = f"window {query['startdate']}..{query['enddate']} offset {offset}"
        body = self._get_retrying("/data/marc", query, what=what)
        return self._parse(body, what, parse_marc_page, "MARCXML")

    def fetch_items(self, item_ids: list[str]) -> dict[str, dict[str, str]]:
        """Metadata of several items in one request: {item id: fields}."""
        if not item_ids:
            return {}
        what = f"items batch of {len(item_ids)} ({item_ids[0]}..)"
        body = self._get_retrying("/items/" + ",".join(item_ids), None, what=what)
        return self._parse(body, what, parse_items, "items XML")

    def _parse(self, body: bytes, what: str, parser: Callable[[bytes], Any], kind: str) -> Any:
        """An <Error> document (with or without an XML declaration) or an unreadable body
        is terminal, named with what was asked."""
        if xml_root(body) == "Error":
            raise RemoteIntegrationError(
                self._message(what, f"error document: {_error_text(body)}")
            )
        try:
            return parser(body)
        except Exception as exc:
            raise RemoteIntegrationError(
                self._message(what, f"unreadable {kind} ({type(exc).__name__}: {exc})")
            ) from exc

    def _get(self, path: str, query: dict | None, *, what: str) -> bytes:
        creds = self.credentials
        api_path = f"/cirrus/library/{creds.library_id}{path}"
        path_with_query = f"{api_path}?{urlencode(query)}" if query else api_path
        headers = signed_headers(
            account_id=creds.account_id,
            account_key=creds.account_key,
            method="GET",
            path_with_query=path_with_query,
            now=timezone.now(),
        )
        base = urlsplit(creds.base_url)
        url = f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{path_with_query}"
        self.gate.wait(self._message(what, "waiting out the API's Retry-After; not sent"))
        try:
            # No redirect is followed: the signed headers must never reach a host other
            # than the collection's checked address.
            response = self.session.get(
                url, headers=headers, timeout=self.timeout_seconds, allow_redirects=False
            )
        except requests.Timeout as exc:
            raise RequestTimedOut(
                self._message(what, f"no answer within {self.timeout_seconds:g}s")
            ) from exc
        except requests.ConnectionError as exc:
            raise BadResponse(self._message(what, f"connection failed: {exc}")) from exc
        status = response.status_code
        if status == 200:
            return response.content
        if 300 <= status < 400:
            raise RemoteIntegrationError(
                self._message(what, f"HTTP {status} redirect refused (the API never redirects)")
            )
        problem = self._message(what, f"HTTP {status} {_error_text(response.content)}")
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if retry_after:
                self.gate.hold(retry_after)
            raise RateLimited(problem, retry_after=retry_after)
        raise (BadResponse if status >= 500 else RemoteIntegrationError)(problem)

    def _get_retrying(self, path: str, query: dict | None, *, what: str) -> bytes:
        """_get, tried again in place after a timeout, 5xx or 429 (BIBLIOTHECA_REQUEST_ATTEMPTS
        tries in all) after a short jittered backoff, or after the 429's Retry-After; one
        longer than BIBLIOTHECA_RETRY_AFTER_MAX_SECONDS fails at once (the chain retries)."""
        conf = bibliotheca_settings
        first = conf.RETRY_WAIT_SECONDS
        backoff = wait_random_exponential(multiplier=first, max=8 * first)

        def asked(state: RetryCallState) -> float | None:  # a 429's Retry-After
            return getattr(
                state.outcome.exception() if state.outcome else None, "retry_after", None
            )

        return Retrying(
            retry=retry_if_exception_type((RequestTimedOut, BadResponse)),
            stop=stop_after_attempt(conf.REQUEST_ATTEMPTS)
            | (lambda state: (asked(state) or 0) > conf.RETRY_AFTER_MAX_SECONDS),
            wait=lambda state: backoff(state) if asked(state) is None else asked(state),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )(self._get, path, query, what=what)

    def _message(self, what: str, problem: str) -> str:
        return f"Bibliotheca collection {self.credentials.name!r}, {what}: {problem}"


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header (seconds or an HTTP date); None if absent or bad."""
    try:
        seconds = float(value) if value and value.strip().isdigit() else None
        if seconds is None:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
    except (TypeError, ValueError):
        return None
    return max(0.0, seconds)


def _error_text(body: bytes) -> str:
    """`Code: Message` of the API's <Error> document; never the raw body of anything else
    (whatever answered may not be the API, and its body is not ours to copy)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        root = None
    if root is None or root.tag != "Error" or not (root.findtext("Code") or "").strip():
        return f"no API error document ({len(body)} bytes)"
    code = root.findtext("Code", "").strip()[:100]
    message = " ".join((root.findtext("Message") or "").split())[:200]
    return f"{code}: {message}".strip(": ")
