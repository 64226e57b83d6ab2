"""Settings of the demo and of trying things by hand: production's, plus the dev kit.

`make demo` uses them; so does `DJANGO_SETTINGS_MODULE=config.settings_dev manage.py
run_fake_wallet` (or `bibliotheca_simulator`). config/settings.py installs no fake.
"""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "devkit"]  # noqa: F405
