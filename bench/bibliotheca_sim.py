"""The Bibliotheca simulator in a child process, for bench/bibliotheca_import.py.

Out of process so that neither variant shares a GIL with the server: the qcluster
workers and the in-process "limit" both talk to it over HTTP. The parent asks it for
its request counts through a pipe.
"""

import multiprocessing
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any


@dataclass
class SimulatorProcess:
    process: multiprocessing.Process
    pipe: Connection
    base_url: str

    def counts(self) -> dict[str, int]:
        """Requests served per endpoint since the last reset."""
        return self._ask("counts")

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.process.is_alive():
            self._ask("stop")
        self.process.join(timeout=10)

    def _ask(self, command: str) -> Any:
        self.pipe.send(command)
        return self.pipe.recv()


def start_simulator_process(catalogue_options: dict[str, Any], **options: Any):
    """Fork a child serving Catalogue(**catalogue_options) on a free port; returns a handle.
    `options`: SimulatorState's (credentials, latency_ms, jitter_ms).

    Call it with no database connection open (the child inherits the parent's memory).
    """
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    process = ctx.Process(
        target=_serve,
        args=(child_end, catalogue_options, options),
        name="bibliotheca-bench-simulator",
        daemon=True,
    )
    process.start()
    base_url = parent_end.recv()
    return SimulatorProcess(process=process, pipe=parent_end, base_url=base_url)


def _serve(pipe: Connection, catalogue_options: dict[str, Any], options: dict) -> None:
    from devkit.bibliotheca_simulator import Catalogue
    from devkit.bibliotheca_simulator.server import SimulatorServer, SimulatorState

    state = SimulatorState(catalogue=Catalogue(**catalogue_options), **options)
    server = SimulatorServer(("127.0.0.1", 0), state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pipe.send(server.base_url)
    while True:
        command = pipe.recv()
        if command == "counts":
            with state.lock:
                pipe.send(dict(state.counts))
        elif command == "reset":
            with state.lock:
                state.counts.clear()
                state.log.clear()
            pipe.send(None)
        elif command == "stop":
            server.shutdown()
            server.server_close()
            pipe.send(None)
            return
