"""The test suite as a Django app: it registers the jobs that only tests run."""

from django.apps import AppConfig


class TestJobsConfig(AppConfig):
    name = "tests"
    label = "tests"
    verbose_name = "Test jobs"

    def ready(self) -> None:
        # Importing the modules fills the job registry, in the test process and in every
        # qcluster it starts (they run with the same settings module).
        import tests.e2e_jobs  # noqa: F401
        import tests.reliability.reaper_jobs  # noqa: F401
