"""Run-now and admin actions need their permissions and CSRF; the account key never leaks."""

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Collection, Timestamp
from devkit.bibliotheca_simulator import Catalogue, start_simulator
from exchanges.models import Exchange, Participant
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job
from tests.bibliotheca.conftest import drain
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "ACCTKEY-7f3c9e1d2b4a-do-not-leak"


def staff(username: str, *perms: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf(client: Client, url: str) -> str:
    assert client.get(url).status_code == 200
    return client.cookies["csrftoken"].value


@pytest.fixture
def objects(program_factory, card_factory):
    program = program_factory()
    card = card_factory(program, points=10, inactive_days=400, google="g-9")
    exchange = Exchange.objects.create(
        name="Sec", organizer_email="o@example.com", exchange_at=timezone.now() + timedelta(days=9)
    )
    Participant.objects.create(exchange=exchange, name="A", email="a@example.com")
    Participant.objects.create(exchange=exchange, name="B", email="b@example.com")
    collection = Collection.objects.create(
        name="Sec", library_id="l", account_id="a", account_key=SECRET
    )
    failed = JobRun.objects.create(job="devkit.demo_job", status="failed", kwargs={})
    dead = Notification.objects.create(
        channel="email",
        recipient="x@example.com",
        template="t",
        body="b",
        dedup_key="sec:1",
        status="dead",
        attempts=4,
    )
    return {
        "loyalty/loyaltycard": (card.pk, ["expire_now", "resync_wallet"]),
        "exchanges/exchange": (
            exchange.pk,
            ["match", "send_reminders_now", "complete", "purge_now"],
        ),
        "bibliotheca/collection": (collection.pk, ["import_purchase_records", "force_reimport"]),
        "jobs/jobrun": (failed.pk, ["retry_runs"]),
        "jobs/notification": (dead.pk, ["requeue"]),
    }


VIEW_ONLY = (
    "loyalty.view_loyaltycard",
    "exchanges.view_exchange",
    "bibliotheca.view_collection",
    "jobs.view_jobrun",
    "jobs.view_notification",
)


def state() -> tuple:
    return (
        JobRun.objects.count(),
        tuple(Notification.objects.order_by("pk").values_list("status", "attempts")),
        tuple(Exchange.objects.order_by("pk").values_list("state", flat=True)),
    )


def test_run_now__needs_login_permission_and_csrf():
    url = reverse("admin:jobs_jobrun_run_now", args=["devkit.demo_job"])
    anonymous = Client(enforce_csrf_checks=True).get(url)
    anonymous_post = Client(enforce_csrf_checks=True).post(url)
    viewer = staff("viewer", "jobs.view_jobrun")
    runner = staff("runner", "jobs.view_jobrun", "jobs.run_job")
    token = csrf(runner, url)
    viewer_get = viewer.get(url).status_code
    viewer_post = viewer.post(url, {"csrfmiddlewaretoken": csrf(viewer, reverse("admin:index"))})
    no_token = runner.post(url)
    assert JobRun.objects.count() == 0
    ok = runner.post(url, {"csrfmiddlewaretoken": token})
    run = JobRun.objects.get()
    say(
        f"run-now: anonymous GET {anonymous.status_code} -> login, POST "
        f"{anonymous_post.status_code}, viewer GET {viewer_get} / "
        f"POST {viewer_post.status_code}, runner POST without CSRF {no_token.status_code}, "
        f"runner POST with CSRF {ok.status_code} -> run #{run.pk} by {run.triggered_by}"
    )
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert anonymous_post.status_code == 403
    assert (viewer_get, viewer_post.status_code, no_token.status_code) == (403, 403, 403)
    assert ok.status_code == 302 and (run.trigger, run.triggered_by) == ("admin", "runner")


def test_admin_actions__need_their_permission_and_csrf(objects):
    viewer = staff("viewer", *VIEW_ONLY)
    boss = User.objects.create_superuser("boss", password="pw")
    admin_client = Client(enforce_csrf_checks=True)
    admin_client.force_login(boss)
    lines = []
    for model, (pk, actions) in objects.items():
        url = reverse(f"admin:{model.replace('/', '_')}_changelist")
        viewer_token = csrf(viewer, url)
        offered = viewer.get(url).content.decode()
        admin_token = csrf(admin_client, url)
        for action in actions:
            before = state()
            data = {"action": action, "_selected_action": [pk], "index": 0}
            denied = viewer.post(url, {**data, "csrfmiddlewaretoken": viewer_token})
            after_viewer = state()
            forged = admin_client.post(url, data)  # a superuser, but no CSRF token
            after_forged = state()
            assert f'value="{action}"' not in offered, f"{action} offered to a view-only user"
            assert after_viewer == before, f"{action} by a view-only user changed something"
            assert forged.status_code == 403 and after_forged == before
            allowed = admin_client.post(url, {**data, "csrfmiddlewaretoken": admin_token})
            assert allowed.status_code in (200, 302)
            lines.append(
                f"  {model:<24} {action:<24} view-only {denied.status_code} (unchanged), "
                f"no CSRF {forged.status_code}, admin+CSRF {allowed.status_code}"
                f"{' (confirm page)' if allowed.status_code == 200 else ''}"
            )
    say("admin actions:\n" + "\n".join(lines))


def test_account_key__never_in_logs_history_admin_or_error_pages(caplog, settings):
    caplog.set_level(logging.DEBUG)
    today = timezone.now().date()
    catalogue = Catalogue(start_date=today - timedelta(days=2), days=2, records_per_day=30)
    server = start_simulator(catalogue, library_id="lib", account_id="acct", account_key=SECRET)
    try:
        good = Collection.objects.create(
            name="Good",
            library_id="lib",
            account_id="acct",
            account_key=SECRET,
            base_url=server.base_url,
        )
        # The remote rejects this one (another key): the 401 path writes errors everywhere.
        bad = Collection.objects.create(
            name="Bad",
            library_id="lib",
            account_id="acct",
            account_key=SECRET + "-old",
            base_url=server.base_url,
        )
        start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
        for c in (good, bad):
            Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=c, finish=start)
            enqueue_job(
                "bibliotheca.import_purchase_records_by_collection",
                kwargs={"collection_id": c.pk, "time_budget_seconds": 0},
                trigger="command",
            )
        drain()
    finally:
        server.stop()
    runs = list(JobRun.objects.all())
    assert {r.status for r in runs} >= {"succeeded", "failed"}

    boss = User.objects.create_superuser("boss", password="pw")
    client = Client(raise_request_exception=False)
    client.force_login(boss)
    pages = [
        reverse("admin:bibliotheca_collection_changelist"),
        reverse("admin:bibliotheca_collection_change", args=[good.pk]),
        reverse("admin:bibliotheca_collection_change", args=[bad.pk]),
        reverse("admin:jobs_jobrun_changelist"),
        reverse("admin:jobs_jobrun_overview"),
        *[reverse("admin:jobs_jobrun_change", args=[r.pk]) for r in runs],
        reverse("admin:bibliotheca_timestamp_changelist")
        if _has_url("admin:bibliotheca_timestamp_changelist")
        else reverse("admin:index"),
    ]
    html = {url: client.get(url).content.decode() for url in pages}
    history = " ".join(
        f"{r.kwargs} {r.result} {r.error} {r.traceback} {r.progress}" for r in runs
    ) + " ".join(f"{t.exception} {t.progress} {t.achievements}" for t in Timestamp.objects.all())

    # The error report (DEBUG page / ADMINS mail) of an exception raised inside the client.
    from django.test import RequestFactory
    from django.views.debug import ExceptionReporter

    from bibliotheca.services.client import BibliothecaClient

    client_obj = BibliothecaClient.for_collection(good)
    client_obj.session.get = _explode
    try:
        client_obj.fetch_items(["x"])
    except RuntimeError:
        report = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        error_page = report.get_traceback_html() + report.get_traceback_text()

    leaks = {
        "logs": SECRET in caplog.text,
        "history": SECRET in history,
        "admin pages": [u for u, h in html.items() if SECRET in h],
        "error report": SECRET in error_page,
    }
    say(
        f"account key: {len(runs)} runs ({sum(r.status == 'failed' for r in runs)} failed, 401), "
        f"{len(caplog.records)} log records, {len(html)} admin pages, debug error report "
        f"({len(error_page):,} chars) checked; leaks: {leaks}"
    )
    assert all(status == 200 for status in [client.get(u).status_code for u in pages[:3]])
    assert leaks == {"logs": False, "history": False, "admin pages": [], "error report": False}


def _explode(*args, **kwargs):
    raise RuntimeError("network stack blew up")


def _has_url(name: str) -> bool:
    from django.urls import NoReverseMatch

    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


PRODUCTION_ENV = {
    "PRODUCTION": "1",
    "DEBUG": "0",
    "SECRET_KEY": "x" * 64 + "-production-secret-for-the-check-only",
    "ALLOWED_HOSTS": "jobs.example.com",
}


def test_check_deploy__clean_with_production_settings():
    import os

    proc = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(settings.BASE_DIR),
        # A production host has no test-only switches (the browser tests set the async one).
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            **PRODUCTION_ENV,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    say(
        f"check --deploy (PRODUCTION=1): exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-600:]}"
    )
    assert proc.returncode == 0


def test_production_without_secret_key__refuses_to_start():
    import os

    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(settings.BASE_DIR),
        env={**env, "PRODUCTION": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = proc.stderr.strip().splitlines()[-1]
    say(f"PRODUCTION=1 without SECRET_KEY: exit {proc.returncode}, {last}")
    assert proc.returncode != 0 and "needs a SECRET_KEY" in last


# --- the permission matrix ------------------------------------------------------------------
# Four staff users against every jobs-core admin action and URL, the apps' "run this job"
# actions, Retry and Run now. An action is allowed when it changes something (a run queued,
# a row requeued, a lease released) and offered on the page; refused when neither.

MATRIX_VIEW = (
    "loyalty.view_loyaltycard",
    "exchanges.view_exchange",
    "bibliotheca.view_collection",
    "jobs.view_jobrun",
    "jobs.view_notification",
    "jobs.view_lease",
    "django_q.view_schedule",
    "django_q.view_success",
    "django_q.view_failure",
    "django_q.view_ormq",
)
ROLES = {
    "no-permission": (),
    "view-only": MATRIX_VIEW,
    "run-only": (*MATRIX_VIEW, "jobs.run_job"),
    "change-only": (*MATRIX_VIEW, *(p.replace(".view_", ".change_") for p in MATRIX_VIEW)),
    # The positive control: what the jobs' own actions need (run, change, delete).
    "run+change+delete": (
        *MATRIX_VIEW,
        "jobs.run_job",
        *(p.replace(".view_", ".change_") for p in MATRIX_VIEW),
        *(p.replace(".view_", ".delete_") for p in MATRIX_VIEW),
    ),
}
FULL = "run+change+delete"
RUN_ONLY = {"run-only", FULL}
NOBODY: set[str] = set()
ONLY_FULL = {FULL}


@pytest.fixture
def matrix_objects(program_factory, card_factory):
    from jobs.models import Lease

    program = program_factory()
    card = card_factory(program, points=10, inactive_days=400, google="g-9")
    future = timezone.now() + timedelta(days=9)
    draft = Exchange.objects.create(name="D", organizer_email="o@example.com", exchange_at=future)
    for name in "AB":
        Participant.objects.create(exchange=draft, name=name, email=f"{name}@example.com")
    matched = Exchange.objects.create(
        name="M", organizer_email="o@example.com", exchange_at=future, state="matched"
    )
    done = Exchange.objects.create(
        name="C",
        organizer_email="o@example.com",
        exchange_at=timezone.now() - timedelta(days=40),
        state="completed",
        completed_at=timezone.now() - timedelta(days=40),
    )
    collection = Collection.objects.create(
        name="Sec", library_id="l", account_id="a", account_key=SECRET
    )

    def reset() -> None:
        """Each user meets the same rows: the dead notification and the dead holder's lease."""
        Notification.objects.filter(dedup_key="sec:1").update(status="dead", attempts=4)
        now = timezone.now()
        Lease.objects.update_or_create(
            key="job:devkit.demo_job",
            defaults={
                "owner": f"run:{killed.pk}",
                "run_id": killed.pk,
                "acquired_at": now,
                "expires_at": None,
            },
        )

    demo_failed = JobRun.objects.create(job="devkit.demo_job", status="failed", kwargs={"items": 1})
    match_failed = JobRun.objects.create(
        job="exchanges.match_exchange", status="failed", kwargs={"exchange_id": draft.pk}
    )
    dead = Notification.objects.create(
        channel="email", recipient="x@example.com", template="t", body="b",
        dedup_key="sec:1", status="dead", attempts=4, last_error="550",
    )  # fmt: skip
    killed = JobRun.objects.create(
        job="devkit.demo_job",
        status="running",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    reset()
    # (changelist, action, selected pk, roles allowed), then the reset before each user
    return reset, [
        ("loyalty_loyaltycard", "expire_now", card.pk, ONLY_FULL),  # run + change
        ("loyalty_loyaltycard", "resync_wallet", card.pk, RUN_ONLY),
        ("exchanges_exchange", "match", draft.pk, ONLY_FULL),  # run + change
        ("exchanges_exchange", "send_reminders_now", matched.pk, RUN_ONLY),
        ("exchanges_exchange", "complete", matched.pk, RUN_ONLY),
        ("exchanges_exchange", "purge_now", done.pk, ONLY_FULL),  # run + delete
        ("bibliotheca_collection", "import_purchase_records", collection.pk, RUN_ONLY),
        ("bibliotheca_collection", "force_reimport", collection.pk, ONLY_FULL),  # run + change
        ("jobs_jobrun", "retry_runs", demo_failed.pk, RUN_ONLY),
        ("jobs_jobrun", "retry_runs", match_failed.pk, ONLY_FULL),  # the draw needs change too
        ("jobs_notification", "requeue", dead.pk, {"change-only", FULL}),
        ("jobs_lease", "release", "job:devkit.demo_job", RUN_ONLY),
        ("jobs_lease", "delete_selected", "job:devkit.demo_job", NOBODY),
        ("django_q_schedule", "delete_selected", None, NOBODY),
        ("django_q_failure", "resubmit_task", None, NOBODY),
    ]


def matrix_state() -> tuple:
    from django_q.models import OrmQ, Schedule

    from jobs.models import Lease

    return (
        JobRun.objects.count(),
        tuple(Notification.objects.order_by("pk").values_list("status", "attempts")),
        tuple(Exchange.objects.order_by("pk").values_list("state", flat=True)),
        tuple(Lease.objects.order_by("key").values_list("key", flat=True)),
        Schedule.objects.count(),
        OrmQ.objects.count(),
    )


def role_clients() -> dict[str, Client]:
    return {role: staff(role, *perms) for role, perms in ROLES.items()}


def test_permission_matrix__admin_actions(matrix_objects):
    from django_q.models import Schedule

    clients = role_clients()
    schedule_pk = Schedule.objects.get(name="jobs.prune_history").pk
    reset, rows = matrix_objects
    table, wrong = [], []
    for changelist, action, pk, allowed in rows:
        url = reverse(f"admin:{changelist}_changelist")
        row = []
        for role, client in clients.items():
            reset()
            page = client.get(url)
            offered = page.status_code == 200 and f'value="{action}"' in page.content.decode()
            before = matrix_state()
            token = csrf(client, reverse("admin:index"))
            selected = schedule_pk if pk is None and changelist == "django_q_schedule" else pk
            response = client.post(
                url,
                {
                    "action": action,
                    "_selected_action": [selected] if selected is not None else [],
                    "index": 0,
                    "post": "yes",
                    "csrfmiddlewaretoken": token,
                },
            )
            changed = matrix_state() != before
            did = "allowed" if (changed and offered) else "refused"
            if (role in allowed) != (did == "allowed") or (changed and not offered):
                wrong.append(
                    f"{changelist}.{action} as {role}: offered={offered} changed={changed}"
                )
            row.append(f"{role} {response.status_code} {did}")
        table.append(f"  {changelist + '.' + action:<46} " + ", ".join(row))
    say("permission matrix, admin actions:\n" + "\n".join(table))
    assert wrong == []


def test_permission_matrix__urls(matrix_objects):
    from django_q.models import Failure, Schedule

    from jobs.models import Lease

    now = timezone.now()
    Failure.objects.create(id="f" * 32, name="n", func="os.system", started=now, stopped=now)
    run = JobRun.objects.filter(job="devkit.demo_job").first()
    schedule = Schedule.objects.get(name="jobs.prune_history")
    lease = Lease.objects.get()
    viewers = {"view-only", "run-only", "change-only", FULL}
    # (method, url, data, roles that get a 2xx/3xx with an effect or a page)
    urls = [
        ("get", reverse("admin:jobs_jobrun_overview"), None, viewers),
        ("get", reverse("admin:jobs_jobrun_changelist"), None, viewers),
        ("get", reverse("admin:jobs_jobrun_change", args=[run.pk]), None, viewers),
        ("get", reverse("admin:jobs_jobrun_progress", args=[run.pk]), None, viewers),
        ("get", reverse("admin:jobs_notification_changelist"), None, viewers),
        ("get", reverse("admin:jobs_lease_changelist"), None, viewers),
        ("get", reverse("admin:django_q_schedule_changelist"), None, viewers),
        ("get", reverse("admin:django_q_failure_changelist"), None, viewers),
        ("get", reverse("admin:jobs_jobrun_run_now", args=["devkit.demo_job"]), None, RUN_ONLY),
        ("post", reverse("admin:jobs_jobrun_run_now", args=["devkit.demo_job"]), {}, RUN_ONLY),
        (
            "post",
            reverse("admin:jobs_jobrun_run_now", args=["loyalty.expire_points"]),
            {},
            ONLY_FULL,
        ),
        (
            "post",
            reverse("admin:jobs_jobrun_run_now", args=["exchanges.purge_completed"]),
            {},
            ONLY_FULL,
        ),
        ("get", reverse("admin:jobs_jobrun_add"), None, NOBODY),
        ("post", reverse("admin:jobs_jobrun_delete", args=[run.pk]), {"post": "yes"}, NOBODY),
        ("post", reverse("admin:jobs_notification_add"), {}, NOBODY),
        ("post", reverse("admin:jobs_lease_delete", args=[lease.pk]), {"post": "yes"}, NOBODY),
        ("post", reverse("admin:jobs_lease_change", args=[lease.pk]), {"owner": "me"}, NOBODY),
        ("post", reverse("admin:django_q_schedule_add"), {"func": "os.system"}, NOBODY),
        (
            "post",
            reverse("admin:django_q_schedule_change", args=[schedule.pk]),
            {"func": "os.system", "name": "jobs.prune_history", "schedule_type": "C"},
            NOBODY,
        ),
        (
            "post",
            reverse("admin:django_q_schedule_delete", args=[schedule.pk]),
            {"post": "yes"},
            NOBODY,
        ),
        (
            "post",
            reverse("admin:django_q_failure_delete", args=["f" * 32]),
            {"post": "yes"},
            NOBODY,
        ),
    ]
    clients = role_clients()
    table, wrong = [], []
    for method, url, data, allowed in urls:
        row = []
        for role, client in clients.items():
            before = matrix_state()
            if method == "get":
                status = client.get(url).status_code
                ok = status == 200
            else:
                token = csrf(client, reverse("admin:index"))
                status = client.post(url, {**data, "csrfmiddlewaretoken": token}).status_code
                ok = status in (200, 302) and matrix_state() != before
            if ok != (role in allowed):
                wrong.append(f"{method.upper()} {url} as {role}: {status}")
            row.append(f"{role} {status}")
        table.append(f"  {method.upper():<4} {url:<58} " + ", ".join(row))
    untouched = Schedule.objects.get(pk=schedule.pk).func
    say("permission matrix, URLs:\n" + "\n".join(table))
    assert wrong == [] and untouched == "jobs.runner.run_scheduled_job"
