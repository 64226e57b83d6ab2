"""Day-window arithmetic of the purchase-record chain (pure functions, no I/O): windows
and pages as docs/bibliotheca.md "What it does" walks them."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from bibliotheca.conf import PAGE_SIZE


@dataclass(frozen=True, kw_only=True)
class Position:
    #: Start of the window being read.
    current_day: datetime
    #: 1-based offset of the next page inside that window.
    offset: int


def window_end(current_day: datetime, now: datetime, cut: datetime | None = None) -> datetime:
    """End of the window starting at current_day, never past now, nor past `cut` (the
    overlap's end) for a window that starts before it."""
    end = min(current_day + timedelta(days=1), now)
    return min(end, cut) if cut is not None and current_day < cut else end


def is_up_to_date(current_day: datetime, now: datetime) -> bool:
    return current_day >= now


def next_position(position: Position, *, records_on_page: int, day_end: datetime) -> Position:
    """Where the next page starts after reading `records_on_page` at `position`."""
    if records_on_page >= PAGE_SIZE:
        return Position(current_day=position.current_day, offset=position.offset + PAGE_SIZE)
    return Position(current_day=day_end, offset=1)


def checkpoint_after_page(
    position: Position, *, records_on_page: int, day_end: datetime
) -> datetime:
    """Timestamp.finish after a page: the day while it is in progress (a restart re-reads
    it from offset 1, pools found, not duplicated), else day_end."""
    return position.current_day if records_on_page >= PAGE_SIZE else day_end


@dataclass(frozen=True)
class ChainRange:
    """The chain's range (`since`: where it started reading, `until`: when it started),
    in day windows (the last one may be partial) for the run's progress bar.
    `overlap_until`: the checkpoint the chain resumed at, when it re-reads the minutes
    before it (`since`..`overlap_until` is read as one window, its cost counted)."""

    since: datetime
    until: datetime
    overlap_until: datetime | None = None

    def window_end(self, current_day: datetime) -> datetime:
        return window_end(current_day, self.until, self.overlap_until)

    def in_overlap(self, current_day: datetime) -> bool:
        return self.overlap_until is not None and current_day < self.overlap_until

    @property
    def days(self) -> int:
        return self.days_done(self.until)

    def days_done(self, current_day: datetime) -> int:
        seconds = (min(current_day, self.until) - self.since).total_seconds()
        return max(0, math.ceil(seconds / 86400))
