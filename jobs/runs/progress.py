"""Progress of a run: reported by the job, kept on its JobRun, shown in words and as a bar
(the admin run page and `manage.py run_job` show it the same way, `describe_progress`)."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from jobs.models import JobRun
from jobs.runs.current import current_run
from jobs.runs.soft_limit import checkpoint


def report_progress(
    *, done: int, total: int | None = None, unit: str = "items", **extra: Any
) -> None:
    """Record how far the current run is (shown in the admin); a no-op outside a job."""
    run = current_run()
    if run is None:
        return
    progress = {"done": done, "total": total, "unit": unit, **extra}
    run.progress = progress
    JobRun.objects.filter(pk=run.pk).update(progress=progress)
    for listener in tuple(_progress_listeners):
        listener(run, progress)
    checkpoint()


#: In-process observers of report_progress (e.g. `manage.py run_job`'s progress bar).
_progress_listeners: list[Callable[[JobRun, dict[str, Any]], None]] = []


@contextmanager
def watching_progress(
    listener: Callable[[JobRun, dict[str, Any]], None],
) -> Iterator[None]:
    """Call `listener(run, progress)` on every report_progress in this process meanwhile (not
    a thread polling the row: a job may report inside its own, uncommitted, transaction)."""
    _progress_listeners.append(listener)
    try:
        yield
    finally:
        _progress_listeners.remove(listener)


@dataclass(frozen=True)
class ProgressView:
    """What `report_progress(done=, total=, unit=)` stored, ready to show."""

    #: 0-100, or None when the total is unknown.
    percent: float | None
    #: "3 of 10 days", or "42 cards" without a total.
    text: str
    #: The other numbers the job reported ("pages 12, records 340"), or "".
    detail: str = ""


def describe_progress(progress: dict[str, Any] | None) -> ProgressView | None:
    """None when the run reported nothing (or something that is not a count)."""
    if not progress or not isinstance(progress, dict):
        return None
    done, total = progress.get("done"), progress.get("total")
    unit = str(progress.get("unit") or "items")
    if not isinstance(done, int | float):
        return None
    detail = ", ".join(
        f"{key.replace('_', ' ')} {value:g}"
        for key, value in progress.items()
        if key not in ("done", "total", "unit")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    )
    if isinstance(total, int | float) and total > 0:
        percent = max(0.0, min(100.0, 100.0 * done / total))
        return ProgressView(round(percent, 1), f"{done:g} of {total:g} {unit}", detail)
    return ProgressView(None, f"{done:g} {unit}", detail)


class ProgressPrinter:
    """Prints progress: a bar redrawn in place on a terminal (`finish()` ends its line), else
    one plain line per change, so logs and CI output stay readable."""

    def __init__(self, *, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stdout
        self.width = width
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last: str | None = None
        self._drawn = False

    def update(self, progress: dict[str, Any] | None) -> None:
        view = describe_progress(progress)
        if view is None or view.text == self._last:
            return
        self._last = view.text
        if self.is_tty:
            bar = ""
            if view.percent is not None:
                filled = round(self.width * view.percent / 100)
                bar = f" [{'#' * filled}{'-' * (self.width - filled)}] {view.percent:5.1f}%"
            self.stream.write(f"\r{self.label}{bar} {view.text}\033[K")
            self._drawn = True
        else:
            percent = f" ({view.percent:.0f}%)" if view.percent is not None else ""
            detail = f" ({view.detail})" if view.detail else ""
            self.stream.write(f"{self.label}: {view.text}{percent}{detail}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
