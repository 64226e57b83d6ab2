"""manage.py demo: the end-to-end demo `make demo` runs."""

import json
from collections import Counter
from importlib import import_module
from importlib.util import find_spec
from types import ModuleType
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from devkit.devservers import AlertReceiver
from devkit.waiting import WaitTimeout, wait_for_run, wait_until
from jobs.cli.commands import command_user
from jobs.health.checks import check_schedules, run_checks
from jobs.models import JobRun, Notification
from jobs.queue.clusters import start_clusters, stop_clusters
from jobs.queue.schedules import sync_schedules
from jobs.registry import CLUSTERS
from jobs.runner import enqueue_job


def demo_modules() -> dict[str, ModuleType]:
    """The demo of every installed app that has one, by app label, in INSTALLED_APPS order.

    An app's demo is `devkit/demos/<label>.py` defining run_demo(*, out) -> None, and
    optionally cluster_env(*, out) -> dict[str, str]: called before the clusters start
    (start fake servers there), its variables are set in every qcluster's environment.
    """
    return {
        config.label: import_module(f"devkit.demos.{config.label}")
        for config in apps.get_app_configs()
        if find_spec(f"devkit.demos.{config.label}") is not None
    }


def format_run(run: JobRun) -> str:
    duration = f"{run.duration_seconds:.2f}s" if run.duration_seconds is not None else "-"
    outcome = json.dumps(run.result, default=str) if run.result is not None else ""
    if run.error:
        outcome = f"{run.error} {outcome}"
    return (
        f"#{run.pk:<5} {run.job:45} {run.trigger:8} {run.status:9} attempt {run.attempt} "
        f"{duration:>8}  {outcome[:160]}"
    )


class Command(BaseCommand):
    help = "Start the clusters, run the demo jobs through the queue, print history, stop."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--only", choices=["jobs", *demo_modules()], action="append")

    def handle(self, *args: Any, only: list[str] | None, **options: Any) -> None:
        out = self.stdout.write
        first_id = (JobRun.objects.order_by("-id").values_list("id", flat=True).first()) or 0
        out(f"schedules: {sync_schedules()}")
        modules = {label: m for label, m in demo_modules().items() if not only or label in only}
        env: dict[str, str] = {}
        for module in modules.values():
            if hasattr(module, "cluster_env"):
                env.update(module.cluster_env(out=out))
        receiver = AlertReceiver()
        # Alerts go to a local receiver (plain http on loopback: DEBUG in the clusters).
        env.update(
            JOBS_ALERT_WEBHOOK_URL=receiver.url, JOBS_ALERT_EMAILS="oncall@example.com", DEBUG="1"
        )
        out(f"alerts: webhook {receiver.url} (a local receiver), email oncall@example.com")
        procs = start_clusters(CLUSTERS, env=env)
        out(f"started qcluster processes for {', '.join(CLUSTERS)} (logs: .run/logs/)")
        try:
            if not only or "jobs" in only:
                self.core_demo(out)
                self.alerts_demo(out, receiver)
            for label, module in modules.items():
                out(f"\n== {label} ==")
                module.run_demo(out=out)
            self.print_history(out, first_id)
            out("\n== health ==")
            out("waiting for the scheduler's first pass (it wakes every 30 s): schedules")
            out("missed while no cluster ran fire once now (catch_up off), not once per slot")
            wait_until(
                lambda: check_schedules().ok,
                timeout_seconds=90,
                what="overdue schedules to be caught up by the scheduler",
            )
            for check in run_checks():
                out(check.line())
        except WaitTimeout as exc:
            raise CommandError(f"demo failed: {exc}") from exc
        finally:
            stop_clusters(procs)
            receiver.stop()
            out("clusters stopped")

    def print_history(self, out, first_id: int) -> None:
        """Runs of this demo: per job its counts by status, then its last run."""
        runs = JobRun.objects.filter(id__gt=first_id)
        out("\n== run history (this demo; admin > Job runs has every row) ==")
        counts: dict[str, Counter] = {}
        for job, status in runs.values_list("job", "status"):
            counts.setdefault(job, Counter())[status] += 1
        for job, by_status in sorted(counts.items()):
            summary = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
            out(f"{job}: {summary}")
            out("  last: " + format_run(runs.filter(job=job).order_by("-id").first()))

    def core_demo(self, out) -> None:
        out("\n== jobs core ==")
        run = enqueue_job(
            "devkit.demo_job",
            kwargs={"items": 1000, "notify": "ops@example.com"},
            trigger=JobRun.Trigger.COMMAND,
            triggered_by=command_user(),
        )
        out(f"queued devkit.demo_job as run #{run.pk}; waiting for the default cluster")
        run = wait_for_run(run.pk, timeout_seconds=60)
        out(format_run(run))
        if run.status != JobRun.Status.SUCCEEDED:
            raise CommandError(f"demo job did not succeed: {run.status} {run.error}")
        if run.result.get("notified"):
            sent = wait_until(
                lambda: Notification.objects.filter(
                    template="devkit/notifications/demo_result", status=Notification.Status.SENT
                ).first(),
                timeout_seconds=90,
                what="the demo notification to be sent by the notifications cluster",
            )
            out(f"notification #{sent.pk} sent to {sent.recipient}: {sent.subject!r}")
        else:
            out("notification already sent by an earlier demo (dedup key): not sent twice")

    def alerts_demo(self, out, receiver: AlertReceiver) -> None:
        """A job that fails for good, then succeeds: the alert and its resolution arrive."""
        out("\n== alerts ==")
        failed = enqueue_job(
            "devkit.demo_job", kwargs={"items": 7, "fail": True}, trigger=JobRun.Trigger.COMMAND
        )
        out(f"queued devkit.demo_job fail=true as run #{failed.pk}: it fails, retries once, fails")
        retry = wait_until(
            lambda: JobRun.objects.filter(parent=failed, status=JobRun.Status.FAILED).first(),
            timeout_seconds=120,
            what="the retry to fail (it waits for the scheduler's next pass, up to 30 s)",
        )
        wait_until(
            lambda: any(a.get("run_id") == retry.pk for a in receiver.received),
            timeout_seconds=60,
            what="the alert",
        )
        self.print_alerts(out, receiver)
        ok = enqueue_job("devkit.demo_job", kwargs={"items": 7}, trigger=JobRun.Trigger.COMMAND)
        out(f"queued devkit.demo_job as run #{ok.pk}: it succeeds, the alert is resolved")
        wait_until(
            lambda: any(a.get("run_id") == ok.pk for a in receiver.received),
            timeout_seconds=60,
            what="the resolution",
        )
        self.print_alerts(out, receiver)
        mail = Notification.objects.filter(
            template="jobs/notifications/alert",
            channel=Notification.Channel.EMAIL,
            body__contains=f"#{retry.pk}",
        ).first()
        if mail is not None:
            out(f"email to {mail.recipient} ({mail.status}): {mail.subject}\n{mail.body}")

    def print_alerts(self, out, receiver: AlertReceiver) -> None:
        while receiver.received:
            alert = receiver.received.pop(0)
            out(f"webhook received: {alert.get('text')}")
            fields = {k: alert.get(k) for k in ("event", "job", "run_id", "status", "count")}
            out(f"  fields: {json.dumps(fields)}")
