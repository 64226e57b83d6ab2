"""Shared fixtures: real PostgreSQL (pytest-django's test database) and real qcluster processes."""

import importlib
import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from jobs.services.clusters import kill_cluster, start_clusters, stop_clusters

#: Test-only jobs, imported by the test process and by every qcluster it starts.
E2E_JOB_MODULES = "tests.e2e_jobs"
os.environ.setdefault("JOBS_EXTRA_TASK_MODULES", E2E_JOB_MODULES)
# The Bibliotheca simulator answers on loopback over plain http (this process and every
# qcluster it starts); tests of the address checks set these settings themselves.
os.environ.setdefault("BIBLIOTHECA_ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("BIBLIOTHECA_ALLOW_HTTP", "1")
# Django may be set up before this file is read: register the test jobs here too.
importlib.import_module(E2E_JOB_MODULES)


def test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class Clusters:
    """Starts real `manage.py qcluster` processes on the test database; stops them at teardown."""

    def __init__(self) -> None:
        self.procs: list = []

    def start(self, names: Sequence[str] = ("default",), env: dict[str, str] | None = None):
        procs = start_clusters(
            names,
            env={
                "DATABASE_URL": test_database_url(),
                "JOBS_EXTRA_TASK_MODULES": E2E_JOB_MODULES,
                **(env or {}),
            },
        )
        self.procs.extend(procs)
        return procs

    def kill(self, proc) -> None:
        """kill -9 a cluster and its workers (a crash, not a shutdown)."""
        kill_cluster(proc)

    def stop(self) -> None:
        stop_clusters(self.procs)
        self.procs.clear()


@pytest.fixture
def qcluster(transactional_db) -> Iterator[Clusters]:
    """Real qcluster processes on the (committed) test database."""
    clusters = Clusters()
    yield clusters
    clusters.stop()


@pytest.fixture
def run_job_in_process() -> Callable:
    """Run a registered job in this process and return its JobRun (no queue)."""
    from jobs.runner import run_job_now

    return run_job_now
