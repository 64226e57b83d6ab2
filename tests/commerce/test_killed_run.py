"""A run killed (kill -9) between chunks resumes on the next run: nothing lost, nothing doubled."""

from collections import Counter

import pytest

from commerce.models import Order, Product
from commerce.services.subscriptions import process_due_subscriptions
from jobs.models import JobRun, Notification
from tests.commerce.conftest import TODAY
from tests.fresh_process import run_python

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
    from tests.conftest import test_database_url  # a module-level name test_* is collected

    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": test_database_url(),
        "COMMERCE_SUBSCRIPTION_CHUNK_SIZE": "10",
        "LOG_LEVEL": "WARNING",
    }
    proc = run_python(WORKER, TODAY.isoformat(), env=env)
    assert proc.returncode == -9, proc.stderr
    assert Order.objects.count() == 20  # two committed chunks survive the kill
    killed = JobRun.objects.get(job="commerce.process_due_subscriptions")
    assert killed.status == "running"  # until the next run or the reaper records it lost

    result = process_due_subscriptions(as_of=TODAY, chunk_size=10)

    assert (result["processed"], result["orders_created"]) == (30, 30)
    per_sub = Counter(Order.objects.values_list("subscription_id", flat=True))
    assert set(per_sub) == {s.pk for s in subs} and set(per_sub.values()) == {1}
    assert Product.objects.get(pk=product.pk).stock_quantity == 1000 - 2 * 50
    confirmations = Notification.objects.filter(template__endswith="order_confirmation")
    assert confirmations.count() == 50
