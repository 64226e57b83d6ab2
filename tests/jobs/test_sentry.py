"""Sentry: off without SENTRY_DSN; with it, a failed run is reported once, secrets filtered,
from the test process (a local transport) and from a real qcluster (a local receiver)."""

import gzip
import json
import logging

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from devkit.waiting import wait_for_run, wait_until
from jobs.health.sentry import init_sentry
from jobs.models import JobRun
from jobs.runner import enqueue_job
from tests.fresh_process import run_python
from tests.live_run import lease_holder

DSN = "https://public@sentry.invalid/1"


class ListTransport(Transport):
    """Keeps the events instead of sending them anywhere."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.events: list[dict] = []

    def capture_envelope(self, envelope) -> None:
        self.events += [item.payload.json for item in envelope.items if item.type == "event"]


@pytest.fixture
def sentry_events():
    transport = ListTransport()
    init_sentry(DSN, transport=transport)
    yield transport.events
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def test_without_a_dsn__sentry_is_not_started():
    assert not sentry_sdk.get_client().is_active()  # tests run without SENTRY_DSN


@pytest.mark.django_db
def test_failed_run__reported_once_with_job_run_id_and_filtered_arguments(
    sentry_events, run_job_in_process
):
    run = run_job_in_process(
        "tests.maybe_fail", kwargs={"fail": True}, trigger="command", triggered_by="me"
    )
    logging.getLogger("django-q").error("task failed", exc_info=RuntimeError("asked to fail"))
    sentry_sdk.flush()

    (event,) = sentry_events  # the log line is a breadcrumb, not a second report
    assert event["tags"]["job"] == "tests.maybe_fail" and event["tags"]["run_id"] == str(run.pk)
    assert event["contexts"]["job_run"]["arguments"] == {"fail": True}
    assert event["exception"]["values"][-1]["value"] == "asked to fail"
    assert all("vars" not in frame for value in event["exception"]["values"]
               for frame in value["stacktrace"]["frames"])  # fmt: skip


@pytest.mark.django_db
def test_secret_arguments__filtered(sentry_events, run_job_in_process):
    run_job_in_process("tests.fail_with_token", kwargs={"token": "s3cret"})
    sentry_sdk.flush()
    (event,) = sentry_events
    assert event["contexts"]["job_run"]["arguments"] == {"token": "[Filtered]"}
    assert "s3cret" not in json.dumps(event) and '"abc"' not in json.dumps(event)


@pytest.mark.e2e
def test_qcluster_with_sentry_dsn__reports_a_failed_run_once(qcluster, httpserver):
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_data("{}")
    dsn = f"http://public@127.0.0.1:{httpserver.port}/1"
    qcluster.start(["default"], env={"SENTRY_DSN": dsn})

    failed = enqueue_job("tests.maybe_fail", kwargs={"fail": True}, trigger="command")
    assert wait_for_run(failed.pk, timeout_seconds=60).status == "failed"
    # The run is recorded failed just before its single-flight lock is let go.
    wait_until(
        lambda: lease_holder("job:tests.maybe_fail") is None, timeout_seconds=10, what="the lock"
    )
    ok = enqueue_job("tests.maybe_fail", trigger="command")  # after it: nothing to report
    assert wait_for_run(ok.pk, timeout_seconds=60).status == "succeeded"

    def events() -> list[dict]:
        found = []
        for request, _ in httpserver.log:
            body = request.get_data()
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            lines = body.decode().splitlines()
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found

    (event,) = wait_until(events, timeout_seconds=30, what="the Sentry event")
    assert event["tags"] == {**event["tags"], "job": "tests.maybe_fail", "run_id": str(failed.pk)}
    assert JobRun.objects.filter(job="tests.maybe_fail").count() == 2
    qcluster.stop()  # the SDK flushes at exit: still one event
    assert len(events()) == 1


@pytest.mark.django_db(transaction=True)
def test_without_a_dsn__a_failed_run_never_loads_the_sdk():
    """A process without SENTRY_DSN (the test process has the SDK loaded by this module)."""
    from tests.conftest import test_database_url

    script = (
        "import sys, django; django.setup()\n"
        "from jobs.runner import run_job_now\n"
        "run = run_job_now('tests.maybe_fail', kwargs={'fail': True})\n"
        "print(run.status, 'sentry_sdk' in sys.modules)\n"
    )
    env = {
        "DATABASE_URL": test_database_url(),
        "LOG_LEVEL": "CRITICAL",
        "SENTRY_DSN": None,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    proc = run_python(script, env=env, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "failed False", proc.stderr
