from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.health.checks import is_healthy, run_checks


class Command(BaseCommand):
    help = "Print one line per health check; exit 1 when unhealthy (same checks as /health/)."

    def handle(self, *args: Any, **options: Any) -> None:
        checks = run_checks()
        for check in checks:
            self.stdout.write(check.line())
        if not is_healthy(checks):
            raise CommandError("unhealthy", returncode=1)
