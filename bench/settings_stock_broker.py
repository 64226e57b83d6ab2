"""Our Q_CLUSTER settings with django-q2's stock ORM broker instead of jobs.queue.broker.SkipLockedORMBroker.

Isolates what the SKIP LOCKED batch dequeue buys from what the other settings buy.
"""

from bench.settings_ours import *  # noqa: F403
from bench.settings_ours import Q_CLUSTER as _OURS

Q_CLUSTER = {key: value for key, value in _OURS.items() if key != "broker_class"}
