"""A hop's page writer in a forked child process, so that writing has a GIL of its own.

The hop's thread fetches and parses MARC pages (CPU in Python); looking their items up
and writing them (items request and parsing, needs-apply hashes, the page's
statement) is also Python work. In one process the two took turns on one GIL and a
hop was about 1.6 times slower than fetching and parsing alone; in a child they run
side by side on two cores (docs/bibliotheca.md "Benchmark").

The child runs the same _PageWriter (its threads, own connections) and writes the
groups in the order they are sent; the parent sends read pages through a pipe and
keeps at most MAX_AHEAD groups unanswered. Each answer carries the hop's counts and
the chain's counts after the last committed checkpoint. An error in the child is
sent back (pickled, with the child's traceback as a note) and raised by the parent at
its next call, as the thread writer raises it: no checkpoint is written after a
failed group. If the parent dies, the child sees the pipe close and exits after the
groups in flight; if the child dies, the parent raises WriterProcessDied.

Forked from the hop's thread before the hop starts other threads. The child never
uses the connections it inherits (psycopg does not close a connection inherited over
fork, so dropping them leaves the parent's sessions alone) and opens its own.
"""

import contextlib
import logging
import os
import pickle
import traceback
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from django.db import connections

logger = logging.getLogger("bibliotheca")

#: Groups sent and not answered yet (the child answers a group once it holds fewer
#: than purchase_chain.GROUPS_IN_FLIGHT groups not written).
MAX_AHEAD = 2


class WriterProcessDied(RuntimeError):
    """The writer child exited without answering (killed, or out of memory)."""


class ForkedPageWriter:
    """_PageWriter's interface (submit, finish, context manager), run in a child."""

    def __init__(self, make_writer: Callable[[dict[str, int]], Any], totals: dict[str, int]):
        self._totals = totals
        parent_end, child_end = Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            code = 1
            try:
                parent_end.close()
                code = _serve(child_end, make_writer, dict(totals))
            finally:
                os._exit(code)
        child_end.close()
        self._pid = pid
        self._pipe = parent_end
        self._unanswered = 0
        self._committed: dict[str, Any] | None = None
        self._closed = False

    def __enter__(self) -> "ForkedPageWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if not self._closed:
                self._closed = True
                self._send(("close", None))
                self._answers(until="closed")
        finally:
            self._pipe.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)

    def submit(self, pages: list) -> dict[str, Any] | None:
        """Send a group; returns the chain's counts after the last group committed
        meanwhile (None: none), raising an earlier group's error."""
        while self._pipe.poll():
            self._answer()
        while self._unanswered >= MAX_AHEAD:
            self._answer()
        self._send(("pages", pages))
        self._unanswered += 1
        committed, self._committed = self._committed, None
        return committed

    def abandon(self) -> None:
        """Groups sent and not written yet are not written (the chain lost its lock)."""
        if not self._closed:  # after finish() every group is written already
            self._send(("abandon", None))

    def finish(self) -> dict[str, Any] | None:
        """Every group sent committed; the chain's counts after the last one."""
        self._closed = True
        self._send(("close", None))
        self._answers(until="closed")
        committed, self._committed = self._committed, None
        return committed

    def _send(self, message: tuple[str, Any]) -> None:
        try:
            self._pipe.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            self._answers(until="closed")  # the child's own error, if it sent one
            raise WriterProcessDied("the page writer process exited") from exc

    def _answers(self, *, until: str) -> None:
        while self._answer() != until:
            pass

    def _answer(self) -> str:
        try:
            kind, totals, committed, error = self._pipe.recv()
        except (EOFError, ConnectionResetError, OSError) as exc:
            raise WriterProcessDied("the page writer process exited without answering") from exc
        if kind == "ack":
            self._unanswered -= 1
        elif kind == "closed":  # the child is done (its error, if any, is raised below)
            self._closed = True
        self._totals.update(totals)
        if committed is not None:
            self._committed = committed
        if error is not None:
            raise pickle.loads(error)
        return kind


def _serve(pipe: Connection, make_writer: Callable[[dict[str, int]], Any], totals) -> int:
    """The child: write the groups received, answer each, until "close" or EOF."""
    for alias in connections:  # the parent's sessions: dropped, never used nor closed
        connections[alias].connection = None
    writer = make_writer(totals)
    try:
        with writer:
            while True:
                try:
                    kind, pages = pipe.recv()
                except EOFError:  # the hop is gone: finish the groups in flight, stop
                    return 0
                if kind == "close":
                    committed = writer.finish()
                    break
                if kind == "abandon":  # not answered
                    writer.abandon()
                    continue
                pipe.send(("ack", totals, writer.submit(pages), None))
        pipe.send(("closed", totals, committed, None))
        return 0
    except BaseException as exc:  # sent to the hop, which raises it
        logger.exception("page writer process failed")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            pipe.send(("closed", totals, None, _pickled(exc)))
        return 1
    finally:
        connections.close_all()


def _pickled(exc: BaseException) -> bytes:
    """The error as the hop will raise it: same class when it pickles, with the child's
    traceback as a note; otherwise a RuntimeError naming it."""
    trace = "".join(traceback.format_exception(exc))
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        copy = RuntimeError(f"{type(exc).__name__}: {exc}")
    copy.add_note(f"in the page writer process:\n{trace}")
    return pickle.dumps(copy)
