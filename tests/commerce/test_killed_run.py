"""A run killed (kill -9) between chunks resumes on the next run: nothing lost, nothing doubled."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from commerce.models import Order, Product
from commerce.services.subscriptions import process_due_subscriptions
from jobs.models import JobRun, Notification
from tests.commerce.conftest import TODAY

pytestmark = pytest.mark.django_db(transaction=True)

#: Runs the job as a command would, and kills its own process (SIGKILL: no cleanup, no
#: rollback of anything committed) once two chunks of 10 have committed.
WORKER = """
import os, signal, sys
import django
django.setup()
from jobs.runs.progress import watching_progress
from jobs.runner import run_job_now

def kill_after_two_chunks(run, progress):
    if progress.get("done", 0) >= 20:
        os.kill(os.getpid(), signal.SIGKILL)

with watching_progress(kill_after_two_chunks):
    run_job_now("commerce.process_due_subscriptions", kwargs={"date": sys.argv[1]})
"""


def test_killed_between_chunks__rerun_makes_the_rest_once(subscription_factory, product_factory):
    product = product_factory(stock=1000)
    subs = [subscription_factory(product=product, quantity=2) for _ in range(50)]
    s = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        "COMMERCE_SUBSCRIPTION_CHUNK_SIZE": "10",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, TODAY.isoformat()],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    assert Order.objects.count() == 20  # two committed chunks survive the kill
    killed = JobRun.objects.get(job="commerce.process_due_subscriptions")
    assert killed.status == "running"  # left for the reaper; its lease expires

    result = process_due_subscriptions(as_of=TODAY, chunk_size=10)

    assert (result["processed"], result["orders_created"]) == (30, 30)
    per_sub = Counter(Order.objects.values_list("subscription_id", flat=True))
    assert set(per_sub) == {s.pk for s in subs} and set(per_sub.values()) == {1}
    assert Product.objects.get(pk=product.pk).stock_quantity == 1000 - 2 * 50
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert confirmations.count() == 50
