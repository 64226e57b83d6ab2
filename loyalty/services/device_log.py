"""Device log lines (the PassKit /v1/log endpoint): escaped, capped, limited in rate.

Anyone can post there, so a line is data, never a log record of ours: one record per
line, escaped (a forged newline cannot start a fake record), cut, and counted against a
per-process budget per minute; the first line dropped in a minute says so.
"""

import logging
import threading
import time
from typing import Any

from loyalty.conf import loyalty_settings

logger = logging.getLogger("loyalty.passkit")
#: Log lines from one device call kept, and their length once escaped.
MAX_LINES_PER_CALL, MAX_LINE_CHARS = 20, 500

_lock = threading.Lock()
_window = {"minute": -1, "written": 0, "dropped": 0}


def escape_line(line: Any) -> str:
    """One printable ASCII line: backslash escapes for newlines, controls and non-ASCII."""
    text = line if isinstance(line, str) else repr(line)[:MAX_LINE_CHARS]
    escaped = text[: MAX_LINE_CHARS * 2].encode("unicode_escape").decode("ascii")
    return escaped[:MAX_LINE_CHARS]


def _take(count: int) -> tuple[int, bool]:
    """(lines allowed now, whether this is the minute's first drop)."""
    minute = int(time.time() // 60)
    budget = int(loyalty_settings.PASSKIT_LOG_LINES_PER_MINUTE)
    with _lock:
        if _window["minute"] != minute:
            _window.update(minute=minute, written=0, dropped=0)
        allowed = max(0, min(count, budget - _window["written"]))
        _window["written"] += allowed
        first_drop = allowed < count and _window["dropped"] == 0
        _window["dropped"] += count - allowed
    return allowed, first_drop


def write_device_log(lines: list[Any]) -> int:
    """Write what the budget allows of `lines` (one record each); how many were written."""
    lines = lines[:MAX_LINES_PER_CALL]
    allowed, first_drop = _take(len(lines))
    for line in lines[:allowed]:
        logger.warning("device log: %s", escape_line(line))
    if first_drop:
        logger.warning(
            "device log: over %s lines this minute; further lines dropped until the next",
            loyalty_settings.PASSKIT_LOG_LINES_PER_MINUTE,
        )
    return allowed
