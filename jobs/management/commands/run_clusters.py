import signal
import time
from typing import Any

from django.core.management.base import BaseCommand

from jobs.queue.clusters import start_clusters, stop_clusters
from jobs.registry import CLUSTERS


class Command(BaseCommand):
    help = (
        "Start one qcluster per cluster (default, notifications, apply, subscriptions) and keep them running "
        "until Ctrl-C. In production run `Q_CLUSTER_NAME=<name> manage.py qcluster` per cluster."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--cluster", action="append", choices=CLUSTERS, dest="clusters")

    def handle(self, *args: Any, clusters: list[str] | None, **options: Any) -> None:
        procs = start_clusters(clusters or CLUSTERS)
        self.stdout.write(f"started {', '.join(clusters or CLUSTERS)}; logs in .run/logs/")
        stop = False

        def on_signal(signum, frame) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            while not stop and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            stop_clusters(procs)
            self.stdout.write("stopped")
