"""Settings of the test suite: the dev settings (production's plus the dev kit: fakes,
simulator, demo), plus the test-only jobs (tests/apps.py).

pytest-django selects it (pyproject.toml) and exports DJANGO_SETTINGS_MODULE, so the
qcluster processes a test starts load the same jobs.
"""

import os

from config.settings_dev import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.apps.TestJobsConfig"]  # noqa: F405

# The Bibliotheca simulator answers on loopback over plain http (this process and every
# qcluster it starts); tests of the address checks set these settings themselves.
BIBLIOTHECA_ALLOWED_HOSTS = ("127.0.0.1", "localhost")
BIBLIOTHECA_ALLOW_HTTP = True

# A qcluster that a test starts with TEST_SCHEDULER_AT_START=1 runs django-q2's scheduler
# on its first guard pass: the guard calls it once per 30 s of its cycle, so with a 30 s
# cycle the first call comes at start-up, not half a minute later. The same cycle checks
# worker time limits only every 30 s, so only tests of schedules ask for it.
if os.environ.get("TEST_SCHEDULER_AT_START"):
    Q_CLUSTER = {**Q_CLUSTER, "guard_cycle": 30}  # noqa: F405
