"""Start and stop real `qcluster` processes (demo, `make run-cluster`, end-to-end tests)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from django.conf import settings

from jobs.registry import CLUSTERS


def start_clusters(
    names: Iterable[str] = CLUSTERS,
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
) -> list[subprocess.Popen]:
    """One `manage.py qcluster` process per cluster name (Q_CLUSTER_NAME selects it)."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    log_dir = log_dir or Path(settings.BASE_DIR) / ".run" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for name in names:
        proc_env = {"Q_LOG_LEVEL": "INFO", **os.environ, **(env or {}), "Q_CLUSTER_NAME": name}
        log = open(log_dir / f"qcluster-{name}.log", "ab")  # noqa: SIM115 - owned by the process
        procs.append(
            subprocess.Popen(
                [sys.executable, str(manage), "qcluster"],
                env=proc_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def stop_clusters(procs: Iterable[subprocess.Popen], *, timeout_seconds: float = 20) -> None:
    """SIGTERM (django-q2 finishes the task at hand), then SIGKILL the whole group if needed."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()  # SIGTERM; nothing if it has exited
    deadline = time.monotonic() + timeout_seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_cluster(proc)


def kill_cluster(proc: subprocess.Popen) -> None:
    """kill -9 the cluster and all its workers (crash tests)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
