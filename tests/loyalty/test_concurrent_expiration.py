"""Two expire_points processes at once on the same cards: each card is expired exactly once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from jobs.models import Notification
from loyalty.models import LoyaltyCard, LoyaltyTransaction
from tests.loyalty.conftest import NOW, ledger_violations

pytestmark = pytest.mark.django_db(transaction=True)

#: Says it is ready, waits for "go" on stdin, then runs the service itself (no
#: single-flight lease), so only the chunks' FOR UPDATE SKIP LOCKED keeps the two apart.
WORKER = """
import json, sys
from datetime import datetime
import django
django.setup()
from django.db import connection
from loyalty.services.expiration import expire_points
now = datetime.fromisoformat(sys.argv[1])
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(expire_points(chunk_size=25, now=now)))
"""


def test_two_processes__expire_each_card_exactly_once(program_factory, card_factory):
    program = program_factory(expiration_days=365)
    due = [
        card_factory(program, points=10 + i % 90, inactive_days=400, warned_days_ago=20)
        for i in range(1500)
    ]
    expected_points = sum(c.points_balance for c in due)
    s = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, NOW.isoformat()],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:  # both interpreters up and connected, then both go at once
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sum(r["cards_processed"] for r in results) == len(due)
    assert sum(r["points_expired"] for r in results) == expected_points
    assert all(r["cards_processed"] > 0 for r in results), results  # both really worked
    per_card = LoyaltyTransaction.objects.filter(transaction_type="points_expired")
    assert per_card.count() == len(due)
    assert per_card.values("card_id").distinct().count() == len(due)
    assert not LoyaltyCard.objects.filter(points_balance__gt=0).exists()
    assert Notification.objects.filter(template__endswith="points_expired").count() == len(due)
    assert ledger_violations() == []
