"""Dev tooling: local fakes of the wallets and of the Bibliotheca API, the demo, dev servers
and polling helpers.

Installed as a Django app only by the test settings (tests/settings.py) and the dev
settings (config/settings_dev.py, used by `make demo`); production settings
(config/settings.py) never install it, and product code never imports it.
"""
