"""Shared fixtures: real PostgreSQL (pytest-django's test database) and real qcluster processes."""

from collections.abc import Callable, Iterator, Sequence

import pytest

from jobs.queue.clusters import kill_cluster, start_clusters, stop_clusters

#: The settings module of the test process and of every qcluster it starts: the dev
#: settings (the project's plus devkit) and the test-only jobs (tests/apps.py).
TEST_SETTINGS = "tests.settings"


def test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class Clusters:
    """Starts real `manage.py qcluster` processes on the test database; stops them at teardown."""

    def __init__(self) -> None:
        self.procs: list = []

    def start(
        self,
        names: Sequence[str] = ("default",),
        env: dict[str, str] | None = None,
        *,
        scheduler_at_start: bool = False,
    ):
        """`scheduler_at_start`: the cluster fires due schedules at once (tests/settings.py)."""
        procs = start_clusters(
            names,
            env={
                "DATABASE_URL": test_database_url(),
                "DJANGO_SETTINGS_MODULE": TEST_SETTINGS,
                **({"TEST_SCHEDULER_AT_START": "1"} if scheduler_at_start else {}),
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
def quiet_scheduler(transactional_db) -> None:
    """No cron schedule fires behind the test's back: only the runs it queues itself."""
    from django_q.models import Schedule

    Schedule.objects.all().delete()


@pytest.fixture
def fresh_schedules(db) -> None:
    """The registry's schedules as a deploy syncs them now. The rows a test starts with
    were synced when its worker's database was migrated or last flushed: on a slow run
    that is minutes ago, and their every-minute slots are then overdue past the grace
    (missed alerts, a failing schedules check) that the test did not cause."""
    from django_q.models import Schedule

    from jobs.queue.schedules import sync_schedules

    Schedule.objects.all().delete()
    sync_schedules()


@pytest.fixture
def reports() -> Iterator[list[dict]]:
    """Every report_progress call in this process, in order (what the run page showed)."""
    from jobs.runs.progress import watching_progress

    seen: list[dict] = []
    with watching_progress(lambda run, progress: seen.append(dict(progress))):
        yield seen


@pytest.fixture
def run_job_in_process() -> Callable:
    """Run a registered job in this process and return its JobRun (no queue)."""
    from jobs.runner import run_job_now

    return run_job_now
