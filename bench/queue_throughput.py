"""No-op tasks per second through our django-q2 cluster settings vs django-q2's defaults.

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/jobs .venv/bin/python bench/queue_throughput.py

(`make bench` does exactly that.) The benchmark never touches the database named in
DATABASE_URL: it creates and migrates `<name>_bench` on the same server and works there.

Each configuration runs in its own `manage.py qcluster` subprocess, because django-q2 reads
Q_CLUSTER once, at import time:

- default      django-q2's defaults (bench/settings_default_q.py): the baseline
- ours         config.settings as is (SkipLockedORMBroker, bulk, poll, save_limit -1, ...),
               through bench/settings_ours.py, which lets the cluster run the no-op tasks
- ours-stock   ours with django-q2's stock ORM broker (bench/settings_stock_broker.py)
- ours-w4      ours with Q_WORKERS=4

For each: start the cluster on an empty queue, wait until it has consumed one warm-up task
(so start-up is not measured), insert N signed no-op tasks in one INSERT (so enqueueing is
not measured), and time from the commit until every row is acknowledged (deleted from
django_q_ormq) or the time cap is reached; the rate is then computed from what was done.
Failed tasks would be acknowledged too (ack_failures), so any Failure row aborts the run.

Machine noise (other engineers' tests share these 2 cores) moves absolute figures a lot;
the ratio against the default cluster, measured in the same run, is the figure to compare.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import own_database, setup_django  # noqa: E402

NOOP = "bench.noop.noop"
QUEUE_KEY = "default"  # the cluster name in every configuration, hence the OrmQ key
TARGET_RATE = 250.0
TARGET_RATIO = 5.0


@dataclass(frozen=True)
class Config:
    name: str
    settings: str
    env: dict[str, str] = field(default_factory=dict)
    ack_failure: bool = True  # what async_task would put in the package under these settings
    note: str = ""


CONFIGS = {
    c.name: c
    for c in (
        Config("default", "bench.settings_default_q", ack_failure=False, note="django-q2 defaults"),
        Config("ours", "bench.settings_ours", note="config.settings Q_CLUSTER"),
        Config("ours-stock", "bench.settings_stock_broker", note="ours, stock ORM broker"),
        Config("ours-w4", "bench.settings_ours", {"Q_WORKERS": "4"}, note="ours, Q_WORKERS=4"),
    )
}
BASELINE = "default"
OURS = "ours"


@dataclass
class Result:
    config: str
    done: int
    seconds: float
    capped: bool

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


# --- database ------------------------------------------------------------------------------


def reset_queue_tables() -> None:
    from django_q.models import OrmQ, Schedule, Task

    OrmQ.objects.all().delete()
    Task.objects.all().delete()
    # Only in the bench database: keep the scheduler from queueing real jobs mid-measurement.
    Schedule.objects.all().delete()


def insert_tasks(count: int, *, ack_failure: bool) -> None:
    """Signed packages as async_task builds them, in one INSERT (rows visible at its commit)."""
    from django.utils import timezone
    from django_q.humanhash import uuid
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    now = timezone.now()
    rows = []
    for _ in range(count):
        name, task_id = uuid()
        task = {"id": task_id, "name": name, "func": NOOP, "args": (), "kwargs": {}}
        if ack_failure:
            task["ack_failure"] = True
        task["started"] = now
        rows.append(OrmQ(key=QUEUE_KEY, payload=SignedPackage.dumps(task), lock=now))
    OrmQ.objects.bulk_create(rows, batch_size=count)


def queued() -> int:
    from django_q.models import OrmQ

    return OrmQ.objects.filter(key=QUEUE_KEY).count()


# --- clusters ------------------------------------------------------------------------------


def start_cluster(config: Config, url: str, log_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "Q_CLUSTER_NAME"}
    env.update(config.env, DATABASE_URL=url, DJANGO_SETTINGS_MODULE=config.settings)
    env.setdefault("PYTHONPATH", str(ROOT))
    log = open(log_dir / f"bench-qcluster-{config.name}.log", "wb")  # noqa: SIM115 - the child owns it
    with log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers are stopped with it
        )


def stop_cluster(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (django-q2 stops gracefully), SIGKILL the process group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of our own process group, if any
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def wait_done(proc: subprocess.Popen, deadline: float, poll: float) -> None:
    """Until every task is acknowledged (its row deleted), the cluster dies or time is up."""
    while queued():
        if proc.poll() is not None:
            raise RuntimeError(f"qcluster exited with {proc.returncode} (see its log)")
        if time.monotonic() > deadline:
            return
        time.sleep(poll)


def run_config(config: Config, url: str, tasks: int, cap: float, log_dir: Path) -> Result:
    reset_queue_tables()
    proc = start_cluster(config, url, log_dir)
    try:
        insert_tasks(1, ack_failure=config.ack_failure)  # warm-up: cluster up and pulling
        wait_done(proc, time.monotonic() + 60, 0.05)
        if queued():
            raise RuntimeError(f"{config.name}: the cluster did not start within 60 s")
        insert_tasks(tasks, ack_failure=config.ack_failure)
        start = time.monotonic()
        wait_done(proc, start + cap, 0.02)
        seconds = time.monotonic() - start
        left = queued()
    finally:
        stop_cluster(proc)
    check_ran(config, log_dir, expected_successes=tasks + 1 - left)
    return Result(config.name, tasks - left, seconds, capped=left > 0)


def check_ran(config: Config, log_dir: Path, expected_successes: int) -> None:
    """Acknowledged must mean executed: no failed task, no package dropped by the pusher."""
    from django_q.models import Failure, Success

    if Failure.objects.exists():
        raise RuntimeError(f"{config.name}: tasks failed (see django_q_task)")
    log = (log_dir / f"bench-qcluster-{config.name}.log").read_text(errors="replace")
    if "Traceback" in log or "Failed to push task" in log:
        raise RuntimeError(f"{config.name}: errors in its log {log_dir}/bench-qcluster-*.log")
    saved = Success.objects.count()
    # Only save_limit >= 0 (the default) keeps successes; it proves the packages run.
    if saved and saved < min(expected_successes, 250):
        raise RuntimeError(f"{config.name}: {saved} successes saved, expected more")


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per run (default 2000)")
    parser.add_argument(
        "--cap", type=float, default=30, help="seconds a run may take at most (default 30)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs per configuration; the median rate is shown"
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated, from {', '.join(CONFIGS)} (default: all)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")
    return measure(args, names)


def measure(args: argparse.Namespace, names: list[str]) -> int:
    url = own_database("bench")
    setup_django(url, quiet_logs=False)
    log_dir = ROOT / ".run" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    print(
        f"queue throughput: {args.tasks} no-op tasks per run, cap {args.cap:g} s, "
        f"{args.rounds} round(s), {os.cpu_count()} CPUs, database {urlsplit(url).path[1:]}"
    )
    results: dict[str, list[Result]] = {n: [] for n in names}
    for round_no in range(args.rounds):
        # Alternate the order so slow phases of the machine do not always hit one config.
        order = names if round_no % 2 == 0 else list(reversed(names))
        for name in order:
            result = run_config(CONFIGS[name], url, args.tasks, args.cap, log_dir)
            results[name].append(result)
            capped = " (time cap)" if result.capped else ""
            print(
                f"  round {round_no + 1} {name:<11} {result.done:>5} tasks in "
                f"{result.seconds:6.2f} s = {result.rate:7.1f} tasks/s{capped}",
                flush=True,
            )
    reset_queue_tables()

    rates = {n: statistics.median(r.rate for r in rs) for n, rs in results.items()}
    base = rates.get(BASELINE)
    print()
    print(f"{'configuration':<13}{'tasks/s':>9}{'vs default':>12}  ")
    for name in names:
        ratio = f"{rates[name] / base:10.1f}x" if base else f"{'-':>11}"
        print(f"{name:<13}{rates[name]:>9.1f}{ratio:>12}  {CONFIGS[name].note}")
    if OURS in rates:
        ok_rate = rates[OURS] >= TARGET_RATE
        print()
        print(
            f"target ours >= {TARGET_RATE:g} tasks/s: {'met' if ok_rate else 'MISSED'} "
            f"({rates[OURS]:.1f})"
        )
        if base:
            ratio = rates[OURS] / base
            print(
                f"target ours >= {TARGET_RATIO:g}x default: "
                f"{'met' if ratio >= TARGET_RATIO else 'MISSED'} ({ratio:.1f}x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
