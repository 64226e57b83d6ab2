"""Settings of the test suite: the project's, plus the test-only jobs (tests/apps.py).

pytest-django selects it (pyproject.toml) and exports DJANGO_SETTINGS_MODULE, so the
qcluster processes a test starts load the same jobs.
"""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.apps.TestJobsConfig"]  # noqa: F405

# The Bibliotheca simulator answers on loopback over plain http (this process and every
# qcluster it starts); tests of the address checks set these settings themselves.
BIBLIOTHECA_ALLOWED_HOSTS = ("127.0.0.1", "localhost")
BIBLIOTHECA_ALLOW_HTTP = True
