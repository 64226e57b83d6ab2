"""A hop's network side: up to BIBLIOTHECA_CONCURRENT_REQUESTS day windows at once, each
page after page (the next offset depends on the page's size), items batches alongside,
on threads that never touch the database. pages() hands them over in page order; no page
but the hop's first starts after the hop's deadline."""

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bibliotheca.models import Collection
from bibliotheca.services.client import BibliothecaClient, RateGate
from bibliotheca.services.pages import Decision, MarcPage, decide, read_page
from bibliotheca.services.windows import ChainRange, Position

#: Pages a window reads ahead of the hop's writing (a long day does not fill memory).
WINDOW_PAGES_AHEAD = 4
#: Windows read and not handed over yet, per concurrent one: reading goes on while the
#: hop writes (4: at 100 ms a request, 2 left the reading waiting on the writes).
WINDOWS_AHEAD = 4
#: The window's reader stopped at the deadline before this page.
_STOPPED = object()


@dataclass(frozen=True)
class ReadFailure:
    """A page that could not be read (or its items looked up): where, and why."""

    position: Position
    error: BaseException


class PageReader:
    """Reads a hop's pages from `start` to the chain's `until` (context manager: leaving
    stops the reading and waits for the requests in flight). Its clients share one
    RateGate: after a 429, no thread sends a request before its Retry-After."""

    def __init__(
        self,
        collection: Collection,
        start: Position,
        chain: ChainRange,
        deadline: float,
        concurrency: int,
    ) -> None:
        self._collection, self._start, self._next = collection, start, start
        self._chain, self._until = chain, chain.until
        self.gate = RateGate()
        self._deadline, self._concurrency = deadline, concurrency
        # A window's reader holds a thread while it reads; at most `concurrency` of
        # them, so the other half of the pool is always free for items batches.
        self._pool = ThreadPoolExecutor(2 * concurrency, thread_name_prefix="bibliotheca-io")
        self._local = threading.local()
        self._clients: list[BibliothecaClient] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reading = 0  # windows whose pages are being fetched
        #: The windows being read, oldest first: each one's pages (or an error, or
        #: _STOPPED) in order.
        self._windows: deque[queue.Queue] = deque()

    def __enter__(self) -> "PageReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self._clients:
            client.session.close()

    def pages(self) -> Iterator[MarcPage | ReadFailure]:
        """The pages in page order, until `until` or the deadline; a failed page's
        ReadFailure in its place, last."""
        while True:
            self._start_windows()
            if not self._windows:
                return
            item = self._windows[0].get()
            if item is _STOPPED:
                return
            yield item
            if isinstance(item, ReadFailure):
                return
            if item.ends_window:
                self._windows.popleft()

    def look_up(self, page: MarcPage, due: dict[str, str | None]) -> "Future[Decision]":
        """The page's Decision, on the pool: its due items fetched in one batch (none
        when nothing is due), parsed and decided."""
        return self._pool.submit(self._look_up, page, due)

    def _look_up(self, page: MarcPage, due: dict[str, str | None]) -> Decision:
        items = self._client().fetch_items(sorted(due)) if due else {}
        return decide(page, due, items, collection=self._collection.name)

    def _start_windows(self) -> None:
        """Start reading the next windows while fewer than `concurrency` are being read and
        WINDOWS_AHEAD times that not handed over, before the deadline (the first always)."""
        with self._lock:
            while (
                not self._stop.is_set()
                and self._reading < self._concurrency
                and len(self._windows) < WINDOWS_AHEAD * self._concurrency
                and self._next.current_day < self._until
                and (self._next == self._start or time.monotonic() < self._deadline)
            ):
                window: queue.Queue = queue.Queue(maxsize=WINDOW_PAGES_AHEAD)
                self._windows.append(window)
                self._reading += 1
                self._pool.submit(self._read_window, self._next, window)
                end = self._chain.window_end(self._next.current_day)
                self._next = Position(current_day=end, offset=1)

    def _read_window(self, position: Position, window: queue.Queue) -> None:
        """Read the window's pages one after the other into its queue (pool thread)."""
        try:
            while not self._stop.is_set():
                if position != self._start and time.monotonic() >= self._deadline:
                    self._put(window, _STOPPED)
                    return
                end = self._chain.window_end(position.current_day)
                records = self._client().fetch_marc_page(
                    start=position.current_day, end=end, offset=position.offset
                )
                page = read_page(
                    records, position, chain=self._chain, collection=self._collection.name
                )
                self._put(window, page)
                if page.ends_window:
                    return
                position = page.next
        except BaseException as exc:
            self._put(window, ReadFailure(position, exc))
        finally:
            with self._lock:
                self._reading -= 1
            self._start_windows()  # the next window, while the hop writes

    def _put(self, window: queue.Queue, item: object) -> None:
        while not self._stop.is_set():
            try:
                window.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _client(self) -> BibliothecaClient:
        """This thread's client (one HTTP session, kept alive, per thread)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = BibliothecaClient.for_collection(self._collection, gate=self.gate)
            self._local.client = client
            self._clients.append(client)
        return client
