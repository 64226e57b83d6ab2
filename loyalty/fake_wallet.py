"""A local fake of both wallet APIs with fault injection, for tests, the demo and benchmarks.

Stdlib `ThreadingHTTPServer` in a daemon thread. It answers the two calls our
clients make (Google loyaltyObject PATCH, Apple pass push) and can be told to be
slow, to fail some or all calls with 5xx, to hang past the client's timeout, or
to fail a given pass a given number of times before it succeeds.
"""

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PATHS = (
    ("PATCH", re.compile(r"^/walletobjects/v1/loyaltyObject/(?P<key>[^/?]+)$"), "google"),
    ("POST", re.compile(r"^/passes/v1/push/(?P<key>[^/?]+)$"), "apple"),
)


@dataclass(kw_only=True)
class Faults:
    """What the fake does wrong; change fields at any time (tests, demo)."""

    #: Added to every answer.
    latency_seconds: float = 0.0
    #: Share of calls answered with `error_status` (random, seeded).
    failure_rate: float = 0.0
    #: Share of calls that hang for `hang_seconds` (a client timeout).
    timeout_rate: float = 0.0
    hang_seconds: float = 2.0
    error_status: int = 503
    #: Pass keys ("google:<id>", "apple:<serial>") that always fail with `error_status`.
    failing_keys: set[str] = field(default_factory=set)
    #: Pass keys that fail the first n calls, then succeed.
    flaky_keys: dict[str, int] = field(default_factory=dict)
    #: Pass keys answered 404 (object deleted on the wallet side).
    missing_keys: set[str] = field(default_factory=set)
    seed: int = 0


@dataclass(frozen=True)
class Call:
    wallet: str
    key: str
    method: str
    authorization: str
    body: dict
    status: int


class _Server(ThreadingHTTPServer):
    # listen() backlog is read in the constructor: a class attribute, not set afterwards.
    # The default 5 refuses bursts from 32 concurrent clients (faults nobody injected).
    request_queue_size = 256
    daemon_threads = True


class FakeWallet:
    """`with FakeWallet(faults=Faults(...)) as wallet:` gives `wallet.base_url` and `wallet.calls`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None):
        self.faults = faults or Faults()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._seen: dict[str, int] = {}
        handler = type("Handler", (_Handler,), {"wallet": self})
        self.server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeWallet":
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="fake-wallet", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeWallet":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls_for(self, key: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if f"{c.wallet}:{c.key}" == key]

    def decide(self, pass_key: str) -> tuple[int, float]:
        """(status, extra seconds to hang) for the next call on this pass."""
        faults = self.faults
        with self._lock:
            seen = self._seen[pass_key] = self._seen.get(pass_key, 0) + 1
            roll_fail = self._random.random()
            roll_hang = self._random.random()
        if pass_key in faults.missing_keys:
            return 404, 0.0
        if pass_key in faults.failing_keys or seen <= faults.flaky_keys.get(pass_key, 0):
            return faults.error_status, 0.0
        if roll_hang < faults.timeout_rate:
            return 504, faults.hang_seconds
        if roll_fail < faults.failure_rate:
            return faults.error_status, 0.0
        return 200, 0.0

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


def _route(method: str, path: str) -> tuple[str, str] | None:
    """(wallet, pass key) of a call our clients make, or None."""
    for expected, pattern, wallet_name in _PATHS:
        match = pattern.match(path)
        if match and expected == method:
            return wallet_name, match["key"]
    return None


class _Handler(BaseHTTPRequestHandler):
    wallet: FakeWallet
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = _route(method, self.path)
        if route is None:
            self._answer(404, {"error": "no such endpoint"})
            return
        wallet_name, key = route
        authorization = self.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            self._answer(401, {"error": "missing bearer token"})
            return
        status, hang = self.wallet.decide(f"{wallet_name}:{key}")
        time.sleep(self.wallet.faults.latency_seconds + hang)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        self.wallet.record(Call(wallet_name, key, method, authorization, body, status))
        self._answer(status, {"id": key} if status == 200 else {"error": f"fake {status}"})

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
