"""config.settings as is, plus the benchmarks' own tasks, which their clusters may run.

The cluster refuses functions that are not job entry points (jobs.queue.guard); only the
benchmarks' clusters allow their no-ops and the source-shaped task of bench/subscriptions.py,
so production settings carry no such list.
"""

from config.settings import *  # noqa: F403

JOBS_EXTRA_QUEUE_FUNCS = (
    "bench.noop.noop",
    "bench.subscriptions.process_single_subscription",
)
