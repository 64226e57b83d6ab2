"""Every app's number settings are checked at start-up (jobs.E204): a typo or a 0 that would
delete every cart or loop for ever stops `check`/`migrate`/`qcluster`, not a run at 2 a.m."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_bad_number_settings_of_every_app_stop_start_up(settings, monkeypatch):
    settings.JOBS_PRUNE_BATCH_SIZE = 0  # LIMIT 0: the prune would never finish
    settings.COMMERCE_CART_RETENTION_DAYS = 0  # every cart, live ones too
    settings.BIBLIOTHECA_CONCURRENT_REQUESTS = -1
    settings.LOYALTY_WALLET_TIMEOUT_SECONDS = "5s"
    monkeypatch.setenv("COMMERCE_AUDIT_RETENTION_DAYS", "ninety")
    settings.JOBS_HEALTH_MAX_FAILURES_24H = 0  # 0 means "no cap": allowed

    with pytest.raises(SystemCheckError) as info:
        call_command("check")

    errors = [line for line in str(info.value).splitlines() if "jobs.E204" in line]
    assert sorted(line.split(") ", 1)[1] for line in errors) == [
        "BIBLIOTHECA_CONCURRENT_REQUESTS is -1: it must be a number above 0",
        "COMMERCE_AUDIT_RETENTION_DAYS is 'ninety': it must be a number above 0",
        "COMMERCE_CART_RETENTION_DAYS is 0: it must be a number above 0",
        "JOBS_PRUNE_BATCH_SIZE is 0: it must be a number above 0",
        "LOYALTY_WALLET_TIMEOUT_SECONDS is '5s': it must be a number above 0",
    ]


def test_the_shipped_defaults_pass():
    call_command("check")
