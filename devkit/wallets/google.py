"""A local fake of Google's OAuth token endpoint and the Wallet API's loyaltyObject, with faults.

Stdlib `ThreadingHTTPServer` in a daemon thread. The token endpoint verifies the
service account's JWT assertion (RS256 with the key's public half, Google's token
audience, the wallet scope) and mints short-lived access tokens; the walletobjects
endpoints accept only those tokens, keep the objects, and can be told to be slow, to
fail with 5xx, to hang past the client's timeout, to have lost objects (404), or to
refuse every token (401) or the account (403).
"""

import json
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from google.auth import jwt

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
#: The audience google-auth (and Google's endpoint) use in assertions, whatever the token_uri.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_OBJECT = re.compile(r"^/walletobjects/v1/loyaltyObject/(?P<id>[^/?]+)$")
_INSERT = "/walletobjects/v1/loyaltyObject"


@dataclass(kw_only=True)
class Faults:
    """What the fake does wrong; change fields at any time (tests, demo)."""

    #: Added to every walletobjects answer.
    latency_seconds: float = 0.0
    #: Share of calls answered with `error_status` (random, seeded).
    failure_rate: float = 0.0
    #: Share of calls that hang for `hang_seconds` (a client timeout).
    timeout_rate: float = 0.0
    hang_seconds: float = 2.0
    error_status: int = 503
    #: Object ids that always fail with `error_status`.
    failing_ids: set[str] = field(default_factory=set)
    #: Object ids that fail the first n calls, then succeed.
    flaky_ids: dict[str, int] = field(default_factory=dict)
    #: Object ids answered 400 (an object the API refuses: not worth retrying).
    rejected_ids: set[str] = field(default_factory=set)
    #: Every access token is refused (401), including fresh ones: a revoked key.
    revoked: bool = False
    #: Every call is answered 403: the account is not a user of the issuer.
    forbidden: bool = False
    #: Every call is answered 403 rateLimitExceeded (a quota, not the credentials).
    quota_exceeded: bool = False
    #: The token endpoint answers 400 invalid_grant (a deleted service account key).
    token_refused: bool = False
    #: Lifetime of the access tokens minted.
    token_lifetime_seconds: int = 3600
    seed: int = 0


@dataclass(frozen=True)
class Call:
    wallet: str
    key: str
    method: str
    authorization: str
    body: dict
    status: int
    #: When it was answered (time.time(): a frozen clock in tests, for lag measurements).
    at: float = 0.0


class _Server(ThreadingHTTPServer):
    # listen() backlog is read in the constructor: a class attribute, not set afterwards.
    # The default 5 refuses bursts from 32 concurrent clients (faults nobody injected).
    request_queue_size = 256
    daemon_threads = True


class FakeGoogleWallet:
    """`with FakeGoogleWallet(public_key_pem=..., client_email=...) as google:`."""

    def __init__(
        self,
        *,
        public_key_pem: str,
        client_email: str,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.public_key_pem = public_key_pem
        self.client_email = client_email
        self.faults = faults or Faults()
        self.calls: list[Call] = []
        #: Verified assertions' claims, one per token minted.
        self.token_requests: list[dict] = []
        #: Objects as the wallet has them (id -> body); ids in `deleted` answer 404.
        self.objects: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._seen: dict[str, int] = {}
        handler = type("Handler", (_Handler,), {"wallet": self})
        self.server = _Server((host, port), handler)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def start(self) -> "FakeGoogleWallet":
        # A short poll interval: stop() waits for the serving loop to look (0.5 s by default).
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-google",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeGoogleWallet":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls_for(self, object_id: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.key == object_id]

    def mint_token(self, assertion: str) -> tuple[int, dict]:
        """The token endpoint (RFC 7523 JWT bearer grant), as Google's answers it."""
        if self.faults.token_refused:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        try:
            claims = jwt.decode(assertion, certs=self.public_key_pem, audience=TOKEN_AUDIENCE)
        except ValueError as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)[:200]}
        if claims.get("iss") != self.client_email or SCOPE not in claims.get("scope", "").split():
            return 400, {"error": "invalid_scope", "error_description": "wrong issuer or scope"}
        token = "fake-access-" + secrets.token_urlsafe(24)
        with self._lock:
            self.token_requests.append(claims)
            self._tokens[token] = time.time() + self.faults.token_lifetime_seconds
        return 200, {
            "access_token": token,
            "expires_in": self.faults.token_lifetime_seconds,
            "token_type": "Bearer",
        }

    def token_status(self, authorization: str) -> int:
        """200 for a live token we minted, else 401 (or 403 when the account is refused)."""
        token = authorization.removeprefix("Bearer ")
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None or expires < time.time() or self.faults.revoked:
            return 401
        return 403 if self.faults.forbidden else 200

    def decide(self, object_id: str, method: str) -> tuple[int, float]:
        """(status, extra seconds to hang) for the next call on this object."""
        faults = self.faults
        with self._lock:
            seen = self._seen[object_id] = self._seen.get(object_id, 0) + 1
            roll_fail = self._random.random()
            roll_hang = self._random.random()
        if object_id in faults.failing_ids or seen <= faults.flaky_ids.get(object_id, 0):
            return faults.error_status, 0.0
        if object_id in faults.rejected_ids:
            return 400, 0.0
        if roll_hang < faults.timeout_rate:
            return 504, faults.hang_seconds
        if roll_fail < faults.failure_rate:
            return faults.error_status, 0.0
        with self._lock:
            if method == "PATCH" and object_id in self.deleted:
                return 404, 0.0
            if method == "POST" and object_id in self.objects and object_id not in self.deleted:
                return 409, 0.0
        return 200, 0.0

    def apply(self, object_id: str, method: str, body: dict) -> None:
        with self._lock:
            if method == "POST":
                self.deleted.discard(object_id)
                self.objects[object_id] = dict(body)
            else:
                self.objects[object_id] = {**self.objects.get(object_id, {}), **body}

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


class _Handler(BaseHTTPRequestHandler):
    wallet: FakeGoogleWallet
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        match = _OBJECT.match(self.path)
        if not match:
            self._answer(404, {"error": "no such endpoint"})
            return
        object_id = match["id"]
        authorization = self.headers.get("Authorization", "")
        status = self.wallet.token_status(authorization)
        if status == 200 and self.wallet.faults.quota_exceeded:
            status = 403
        with self.wallet._lock:
            found = self.wallet.objects.get(object_id)
        if status == 200 and (found is None or object_id in self.wallet.deleted):
            status = 404
        self.wallet.record(Call("google", object_id, "GET", authorization, {}, status, time.time()))
        self._answer(status, found if status == 200 else _error(status, self.wallet.faults))

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if method == "POST" and self.path == "/token":
            form = parse_qs(raw.decode())
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                self._answer(400, {"error": "unsupported_grant_type"})
                return
            self._answer(*self.wallet.mint_token(form.get("assertion", [""])[0]))
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        match = _OBJECT.match(self.path)
        if method == "PATCH" and match:
            object_id = match["id"]
        elif method == "POST" and self.path == _INSERT:
            object_id = str(body.get("id", ""))
        else:
            self._answer(404, {"error": "no such endpoint"})
            return
        self._object_call(method, object_id, body)

    def _object_call(self, method: str, object_id: str, body: dict) -> None:
        authorization = self.headers.get("Authorization", "")
        status = self.wallet.token_status(authorization)
        hang = 0.0
        if status == 200 and self.wallet.faults.quota_exceeded:
            status = 403
        elif status == 200:
            status, hang = self.wallet.decide(object_id, method)
        time.sleep(self.wallet.faults.latency_seconds + hang)
        if status == 200:
            self.wallet.apply(object_id, method, body)
        self.wallet.record(
            Call("google", object_id, method, authorization, body, status, time.time())
        )
        answer = {"id": object_id} if status == 200 else _error(status, self.wallet.faults)
        self._answer(status, answer)

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


def _error(status: int, faults: Faults) -> dict:
    """Google's error body: a 403 says whether it is the quota or the permission."""
    if status == 403 and faults.quota_exceeded:
        return {
            "error": {
                "code": 403,
                "message": "Quota exceeded for quota metric 'Write requests'",
                "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded"}],
                "status": "PERMISSION_DENIED",
            }
        }
    if status == 403:
        return {
            "error": {
                "code": 403,
                "message": "The caller does not have permission",
                "errors": [{"domain": "global", "reason": "forbidden"}],
                "status": "PERMISSION_DENIED",
            }
        }
    return {"error": {"code": status}}
