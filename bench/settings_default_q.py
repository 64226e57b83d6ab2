"""Our settings (with the benchmark's no-op tasks allowed) with django-q2's defaults for the cluster: the benchmark's baseline.

Only what django-q2 requires to use the ORM broker is set; everything else (workers = CPU
count, bulk 1, poll 0.2 s, queue_limit workers**2, save_limit 250, INFO logging, stock ORM
broker) is django-q2 1.11's default.
"""

from bench.settings_ours import *  # noqa: F403

Q_CLUSTER = {"name": "default", "orm": "default"}
