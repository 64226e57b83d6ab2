"""The simulator's HTTP server: verifies signatures, serves pages and items, injects faults.

Run it in a thread (`start_simulator`, tests, demo, bench) or as
`manage.py bibliotheca_simulator --port N`. Faults are one-shot rules consumed in order
by the next matching requests, so a test says exactly which request fails and how.
"""

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bibliotheca.services.signing import signature
from devkit.bibliotheca_simulator.catalogue import Catalogue

FAULT_KINDS = ("5xx", "429", "timeout", "error_xml", "http_403", "malformed_xml")
WINDOW_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(kw_only=True)
class Fault:
    """Make the next `times` matching requests fail with `kind`."""

    kind: str
    #: "marc", "items" or "any".
    endpoint: str = "any"
    times: int = 1
    #: For "timeout": how long the server stalls before answering.
    delay_seconds: float = 5.0
    #: Let this many matching requests through first.
    after: int = 0
    #: Only requests whose query (MARC) or route (items) contains this text match.
    match: str = ""
    #: For "429": the Retry-After header, in seconds (None: no header).
    retry_after: float | None = None
    #: For "error_xml": the body answered with 200 instead of a bare <Error> document
    #: (one with an XML declaration, a proxy's maintenance page).
    body: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}, expected one of {FAULT_KINDS}")


@dataclass(kw_only=True)
class SimulatorState:
    catalogue: Catalogue
    library_id: str = "lib"
    account_id: str = "acct"
    account_key: str = "secret"
    faults: list[Fault] = field(default_factory=list)
    #: Every answer waits this long (the real API takes 50-300 ms)...
    latency_ms: float = 0.0
    #: ... give or take up to this much, uniformly, per request.
    jitter_ms: float = 0.0
    #: Requests served per endpoint ("marc", "items", "unauthorized").
    counts: dict[str, int] = field(default_factory=dict)
    #: (endpoint, query or ids) of every request, oldest first.
    log: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, endpoint: str, detail: str = "") -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.endpoint in (endpoint, "any") and fault.match in detail:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def delay_seconds(self) -> float:
        """How long the next answer waits: latency give or take jitter, never negative."""
        jitter = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000

    def count(self, endpoint: str, detail: str) -> None:
        with self.lock:
            self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
            self.log.append((endpoint, detail))


class _Handler(BaseHTTPRequestHandler):
    server: "SimulatorServer"
    # Keep-alive, as the real API (every answer has a Content-Length).
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY the body waits for an ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet by default
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state = self.server.state
        delay = state.delay_seconds()
        if delay:
            time.sleep(delay)
        if not self._signature_ok(state):
            state.count("unauthorized", self.path)
            return self._send(401, _error("InvalidSignature", "signature does not match"))
        parts = urlsplit(self.path)
        prefix = f"/cirrus/library/{state.library_id}"
        if not parts.path.startswith(prefix + "/"):
            return self._send(404, _error("NotFound", f"unknown library in {parts.path}"))
        route = parts.path[len(prefix) :]
        if route == "/data/marc":
            endpoint = "marc"
        elif route.startswith("/items/"):
            endpoint = "items"
        else:
            return self._send(404, _error("NotFound", route))
        state.count(endpoint, parts.query or route)
        fault = state.take_fault(endpoint, parts.query or route)
        if fault is not None and self._inject(fault):
            return
        if endpoint == "marc":
            return self._marc(state.catalogue, parse_qs(parts.query))
        ids = [i for i in route[len("/items/") :].split(",") if i]
        known = [i for i in ids if _is_item_id(i)]
        return self._send(200, state.catalogue.items_xml(known))

    def _marc(self, catalogue: Catalogue, query: dict[str, list[str]]) -> None:
        try:
            start = datetime.strptime(query["startdate"][0], WINDOW_FORMAT).replace(tzinfo=UTC)
            end = datetime.strptime(query["enddate"][0], WINDOW_FORMAT).replace(tzinfo=UTC)
            offset = int(query.get("offset", ["1"])[0])
            limit = int(query.get("limit", ["50"])[0])
        except (KeyError, ValueError):
            return self._send(400, _error("BadRequest", "startdate, enddate, offset, limit"))
        if offset < 1 or not 1 <= limit <= 50:
            return self._send(400, _error("BadRequest", "offset is 1-based, limit 1..50"))
        listed = catalogue.records_between(start, end, listed_by=datetime.now(UTC))
        page = listed[offset - 1 : offset - 1 + limit]
        if not page:
            return self._send(200, "")
        body = "".join(catalogue.marc_record_xml(r) for r in page)
        self._send(200, f'<collection xmlns="http://www.loc.gov/MARC21/slim">{body}</collection>')

    def _inject(self, fault: Fault) -> bool:
        if fault.kind == "5xx":
            self._send(503, _error("ServiceUnavailable", "injected fault"))
        elif fault.kind == "429":
            wait = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            self._send(429, _error("TooManyRequests", "injected fault"), headers=wait)
        elif fault.kind == "timeout":
            time.sleep(fault.delay_seconds)
            return False  # answers late; the client has given up by then
        elif fault.kind == "error_xml":
            self._send(200, fault.body or _error("Gen-001", "injected error document"))
        elif fault.kind == "http_403":
            self._send(403, _error("Forbidden", "injected fault"))
        elif fault.kind == "malformed_xml":
            self._send(200, "<collection><record><leader>broken")
        return True

    def _signature_ok(self, state: SimulatorState) -> bool:
        date = self.headers.get("3mcl-Datetime", "")
        auth = self.headers.get("3mcl-Authorization", "")
        expected = signature(
            account_key=state.account_key,
            datetime_header=date,
            method="GET",
            path_with_query=self.path,
        )
        return bool(date) and auth == f"3MCLAUTH {state.account_id}:{expected}"

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        super().__init__(address, _Handler)
        self.state = state

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def start_simulator(
    catalogue: Catalogue, *, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> SimulatorServer:
    """Serve in a daemon thread (port 0: a free one); call .stop() when done. `options`:
    SimulatorState's (credentials, latency_ms, jitter_ms)."""
    server = SimulatorServer((host, port), SimulatorState(catalogue=catalogue, **options))
    # A short poll interval: stop() waits for the serving loop to look (0.5 s by default).
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="bibliotheca-simulator",
        daemon=True,
    ).start()
    return server


def _error(code: str, message: str) -> str:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"


def _is_item_id(value: str) -> bool:
    try:
        datetime.strptime(value[3:11], "%Y%m%d")
        return value.startswith("bib") and value[11:].isdigit()
    except ValueError:
        return False
