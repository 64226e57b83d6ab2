"""Throwaway local servers for tests and benchmarks (never used in production)."""

import errno
import socket
import subprocess
import tempfile
import time
from pathlib import Path


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


class RedisServer:
    """A redis-server on a free port without persistence; `stop()` ends it.

    Logs to `<directory>/redis.log` (a temporary folder when none is given).
    """

    def __init__(self, binary: str, directory: Path | None = None) -> None:
        import redis

        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="redis-")
        self.dir = Path(directory or self._tmp.name)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],  # fmt: skip
            stdout=open(self.dir / "redis.log", "wb"),  # noqa: SIM115 - owned by the process
            stderr=subprocess.STDOUT,
        )
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not start: {self.dir}/redis.log"
                    ) from None
                time.sleep(0.05)
        self.version = self.client.info("server")["redis_version"]

    def queue_length(self, cluster: str = "default") -> int:
        """Tasks waiting in django-q2's Redis list for `cluster`."""
        return self.client.llen(f"django_q:{cluster}:q")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()


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
