"""config.settings as is, plus the benchmark's no-op tasks, which the cluster may run.

The cluster refuses functions that are not job entry points (jobs.queue_guard); only the
benchmark's clusters allow its no-ops, so production settings carry no such list.
"""

from config.settings import *  # noqa: F403

JOBS_EXTRA_QUEUE_FUNCS = ("bench.noop.noop", "bench.queue_throughput.counted_noop")
