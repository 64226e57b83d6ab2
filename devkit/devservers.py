"""Throwaway local servers for tests, benchmarks and the demo, and their option types (never
used in production)."""

import argparse
import errno
import math
import socket

from jobs.cli.types import ascii_digits


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listen_problem(exc: OSError, *, host: str, port: int) -> str:
    """One line saying why a dev server could not listen on host:port, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use: stop what listens there or pick another --port"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges: pick a port above 1023"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


# The dev servers' option types: only what the help says (`float("nan")` passes `< 0`).


def port_number(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    if not ascii_digits(text) or len(text) > 5 or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def non_negative_int(text: str) -> int:
    """A count: ASCII digits only (at most 18 of them)."""
    if not ascii_digits(text) or len(text) > 18:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


#: Ceiling of `non_negative_float` (a delay of 11 days; `time.sleep(1e300)` overflows).
MAX_FLOAT = 1_000_000.0


def non_negative_float(text: str) -> float:
    """A number from 0 to 1,000,000 (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not text.isascii() or not 0 <= value <= MAX_FLOAT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to {MAX_FLOAT:,.0f}")
    return value


class AlertReceiver:
    """A local stand-in for a Slack incoming webhook: keeps every JSON body POSTed to it
    (the demo shows alerts as they arrive); `stop()` ends it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # quiet: the demo prints what matters
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
