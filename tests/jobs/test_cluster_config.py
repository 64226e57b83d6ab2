"""The effective django-q2 configuration of every cluster, as `qcluster` reads it.

django-q2 builds its Conf at import from Q_CLUSTER and, for Q_CLUSTER_NAME, the matching
ALT_CLUSTERS entry: each cluster is read in its own process, as a real qcluster would.
"""

import json

import pytest
from django.conf import settings

from tests.fresh_process import run_python

CODE = (
    "import json, django; django.setup(); from django_q.conf import Conf; "
    "print(json.dumps({'name': Conf.CLUSTER_NAME, 'recycle': Conf.RECYCLE, "
    "'timeout': Conf.TIMEOUT, 'retry': Conf.RETRY, 'orm': Conf.ORM, "
    "'broker': Conf.BROKER_CLASS}))"
)


def effective_conf(cluster: str) -> dict:
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "Q_CLUSTER_NAME": cluster}
    out = run_python(CODE, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


CLUSTERS = ["default", *settings.Q_CLUSTER["ALT_CLUSTERS"]]


@pytest.fixture(scope="module")
def confs() -> dict[str, dict]:
    return {name: effective_conf(name) for name in CLUSTERS}


def test_every_cluster_recycles_its_workers_after_1000_tasks(confs):
    """The storefront source's "max tasks per child" 1000 (django-q2's default is 500)."""
    assert {name: conf["recycle"] for name, conf in confs.items()} == dict.fromkeys(CLUSTERS, 1000)
    assert {name: conf["name"] for name, conf in confs.items()} == {n: n for n in CLUSTERS}
    assert all(conf["retry"] > conf["timeout"] for conf in confs.values())


def test_every_cluster_queues_in_postgresql_through_the_skip_locked_broker(confs):
    assert {name: (conf["orm"], conf["broker"]) for name, conf in confs.items()} == dict.fromkeys(
        CLUSTERS, ("default", "jobs.queue.broker.SkipLockedORMBroker")
    )
