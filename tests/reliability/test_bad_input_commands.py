"""Every management command with bad, missing and conflicting arguments.

Each case runs the command as `manage.py` would (run_from_argv, in this process for speed):
expected a non-zero exit, a one-line error (argparse errors: its usage lines plus one
`error:` line) and no change in the database (row counts and checksums of every table
the commands write).
"""

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.db import connection
from django.utils import timezone

from bibliotheca.models import Collection
from exchanges.models import Exchange, Participant
from tests.conftest import test_database_url as database_url
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db(transaction=True)  # run_from_argv closes connections

TABLES = (
    "jobs_jobrun",
    "jobs_notification",
    "jobs_lease",
    "django_q_ormq",
    "django_q_schedule",
    "loyalty_loyaltycard",
    "loyalty_loyaltytransaction",
    "exchanges_exchange",
    "exchanges_match",
    "exchanges_reminder",
    "bibliotheca_licensepool",
    "bibliotheca_timestamp",
)


def fingerprint() -> dict[str, str]:
    """Row count and an md5 of every row, per table."""
    out = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
            )  # noqa: S608
            out[table] = "{}:{}".format(*cursor.fetchone())
    return out


@pytest.fixture
def world(program_factory, card_factory):
    program = program_factory()
    plain = card_factory(program, points=5, inactive_days=400)
    with_pass = card_factory(program, points=5, inactive_days=0.01, google="g-1")
    draft = Exchange.objects.create(
        name="Draft",
        organizer_email="o@example.com",
        exchange_at=timezone.now() + timedelta(days=30),
    )
    Participant.objects.create(exchange=draft, name="Solo", email="solo@example.com")
    matched = Exchange.objects.create(
        name="Matched",
        organizer_email="o@example.com",
        exchange_at=timezone.now() + timedelta(days=30),
        state=Exchange.State.MATCHED,
    )
    Collection.objects.create(
        name="Off", library_id="l", account_id="a", account_key="k", enabled=False
    )
    on = Collection.objects.create(name="On", library_id="l", account_id="a", account_key="k")
    ids = {
        "program": program.pk,
        "card": plain.pk,
        "pass_card": with_pass.pk,
        "draft": draft.pk,
        "matched": matched.pk,
        "on": on.pk,
    }
    # The same ids in Arabic-Indic digits: int("٣") is 3, but an operator never means it.
    arabic = {f"{k}_arabic": str(v).translate(ARABIC_DIGITS) for k, v in ids.items()}
    return {**ids, **arabic, "since": datetime(2026, 1, 1, tzinfo=UTC).isoformat()}


ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


#: (command, argv after the name); ids from the world fixture are filled in with str.format.
CASES = [
    ("run_job", []),
    ("run_job", ["no.such_job"]),
    ("run_job", ["loyalty.expire_points", "dry_run"]),
    ("run_job", ["loyalty.expire_points", "dry_run=true", "dry_run=false"]),
    ("run_job", ["loyalty.expire_points", "nope=1"]),
    ("run_job", ["loyalty.expire_points", "1=2"]),
    ("expire_points", ["--program", "abc"]),
    ("expire_points", ["--program", "999999"]),
    ("expire_points", ["--program"]),
    ("expire_points", ["extra"]),
    ("sync_wallet_passes", ["--card", "999999"]),
    ("sync_wallet_passes", ["--card", "{card}"]),
    ("sync_wallet_passes", ["--card", "x"]),
    ("sync_wallet_passes", ["--all-since", "yesterday"]),
    ("sync_wallet_passes", ["--all-since", "2026-01-01T00:00"]),
    ("sync_wallet_passes", ["--card", "{pass_card}", "--all-since", "{since}"]),
    ("import_bibliotheca_purchases", []),
    ("import_bibliotheca_purchases", ["--import-all", "--collection", "On"]),
    ("import_bibliotheca_purchases", ["--collection", "Nope"]),
    ("import_bibliotheca_purchases", ["--collection", "Off"]),
    ("import_bibliotheca_purchases", ["--collection", "999999"]),
    ("import_bibliotheca_purchases", ["--force-reimport"]),
    ("import_bibliotheca_purchases", ["--collection", "²"]),
    ("import_bibliotheca_purchases", ["--collection", "{on_arabic}"]),
    ("import_bibliotheca_purchases", ["--collection", "9" * 5000]),
    ("expire_points", ["--program", "{program_arabic}"]),
    ("expire_points", ["--program", "²"]),
    ("sync_wallet_passes", ["--card", "{pass_card_arabic}"]),
    ("match_exchange", ["{draft_arabic}"]),
    ("send_due_reminders", ["--exchange", "{matched_arabic}"]),
    ("send_due_reminders", ["--exchange", " {matched}"]),
    ("purge_completed", ["--exchange", "²", "--no-input"]),
    ("match_exchange", []),
    ("match_exchange", ["abc"]),
    ("match_exchange", ["999999"]),
    ("match_exchange", ["{matched}"]),
    ("purge_completed", ["--exchange", "999999", "--no-input"]),
    ("purge_completed", ["--exchange", "{matched}", "--no-input"]),
    ("purge_completed", ["--exchange", "abc"]),
    ("send_due_reminders", ["--exchange", "abc"]),
    ("send_due_reminders", ["--exchange", "999999"]),
    ("send_due_reminders", ["--exchange", "{draft}"]),
    ("auto_complete", ["extra"]),
    ("cleanup_tokens", ["--bogus"]),
    ("cleanup_sessions", ["extra"]),
    ("cleanup_rate_limits", ["--dry-run=yes"]),
    ("run_clusters", ["--cluster", "bogus"]),
    ("demo", ["--only", "bogus"]),
    ("list_jobs", ["extra"]),
    ("jobs_health", ["extra"]),
    ("wallet_status", ["extra"]),
    ("sync_schedules", ["extra"]),
]


def run_command(name: str, argv: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    command = load_command_class(get_commands()[name], name)
    try:
        command.run_from_argv(["manage.py", name, *argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()]


def test_every_command__bad_missing_conflicting_arguments(world, capsys):
    covered = {name for name, _ in CASES}
    ours = {
        name
        for name, app in get_commands().items()
        if app in ("jobs", "loyalty", "exchanges", "bibliotheca", "devkit")
    }
    servers = {"bibliotheca_simulator", "run_fake_wallet"}  # tested in subprocesses below
    assert ours - servers <= covered, (
        f"commands without bad-input cases: {ours - servers - covered}"
    )

    problems, rows = [], []
    for name, template in CASES:
        argv = [a.format(**world) for a in template]
        before = fingerprint()
        code, err = run_command(name, argv, capsys)
        changed = [t for t, v in fingerprint().items() if before[t] != v]
        error_lines = [line for line in err if not line.startswith(("usage:", " "))]
        line = f"{name} {' '.join(argv)}".strip()
        rows.append(
            f"  exit {code}  {line:<70} {error_lines[-1][:90] if error_lines else '(no error)'}"
        )
        if code == 0 or len(error_lines) != 1 or changed:
            problems.append((line, code, err, changed))
    say(f"{len(CASES)} bad-input command cases:\n" + "\n".join(rows))
    assert problems == []


def test_run_job__badly_typed_value_is_rejected_before_running(world, capsys):
    before = fingerprint()
    code, err = run_command("run_job", ["loyalty.expire_points", "program_id=abc"], capsys)
    changed = [t for t, v in fingerprint().items() if before[t] != v]
    say(f"run_job loyalty.expire_points program_id=abc: exit {code}, {err[-1:]}, changed {changed}")
    assert (code, changed) == (2, [])


def test_match_exchange__impossible_draw_fails_in_one_line_with_only_history_written(world, capsys):
    """Not bad input: a valid draft whose draw is impossible. The run is history (failed,
    permanent, not retried); nothing else changes."""
    before = fingerprint()
    code, err = run_command("match_exchange", [str(world["draft"])], capsys)
    changed = [t for t, v in fingerprint().items() if before[t] != v]
    say(f"match_exchange <1-person draft>: exit {code}, {err}, changed {changed}")
    assert code == 1 and len(err) == 1 and changed == ["jobs_jobrun"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run_fake_wallet", "--failure-rate", "2"],
        ["run_fake_wallet", "--latency-ms", "-5"],
        ["bibliotheca_simulator", "--port", "0", "--fault", "nonsense"],
        ["bibliotheca_simulator", "--port", "0", "--days", "-1"],
        ["run_fake_wallet", "--latency-ms", "nan"],
        ["run_fake_wallet", "--hang-seconds", "inf"],
        ["bibliotheca_simulator", "--port", "70000"],
        ["bibliotheca_simulator", "--port", "٣٠٠٠"],
        ["bibliotheca_simulator", "--port", "0", "--days", "99999999"],
        ["bibliotheca_simulator", "--port", "0", "--latency-ms", "nan"],
        ["bibliotheca_simulator", "--port", "0", "--jitter-ms", "-5"],
    ],
)
def test_server_commands__bad_arguments_exit_before_serving(argv):
    try:
        proc = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=Path(settings.BASE_DIR),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"manage.py {' '.join(argv)} started serving instead of rejecting its input")
    errors = [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and not line.startswith(("usage:", " "))
    ]
    say(f"manage.py {' '.join(argv)}: exit {proc.returncode}, {errors[-1:]}")
    assert proc.returncode != 0 and len(errors) == 1


@pytest.mark.parametrize("command", ["bibliotheca_simulator"])  # the wallet fakes take free ports
def test_server_commands__port_in_use__one_line_not_a_traceback(command):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "manage.py", command, "--port", str(port)],
            cwd=Path(settings.BASE_DIR),
            capture_output=True,
            text=True,
            timeout=20,
        )
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    say(f"manage.py {command} --port <in use>: exit {proc.returncode}, {errors}")
    assert proc.returncode == 1
    assert errors == [
        f"CommandError: port {port} on 127.0.0.1 is already in use: stop what listens there"
        " or pick another --port"
    ]


@pytest.fixture
def completed_exchange() -> Exchange:
    return Exchange.objects.create(
        name="Done",
        organizer_email="o@example.com",
        exchange_at=timezone.now() - timedelta(days=40),
        state=Exchange.State.COMPLETED,
        completed_at=timezone.now() - timedelta(days=40),
    )


def manage_py(*argv: str) -> subprocess.CompletedProcess:
    """`manage.py argv` on the test database with stdin closed, as cron runs it."""
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=Path(settings.BASE_DIR),
        env={**os.environ, "DATABASE_URL": database_url()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_purge_completed__no_terminal__refuses_in_one_line_unless_no_input(completed_exchange):
    pk = str(completed_exchange.pk)
    before = fingerprint()

    refused = manage_py("purge_completed", "--exchange", pk)

    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    say(f"purge_completed --exchange {pk} < /dev/null: exit {refused.returncode}, {errors}")
    assert refused.returncode == 2
    assert errors == [
        "CommandError: no terminal to confirm the purge on: pass --no-input to purge anyway"
    ]
    assert fingerprint() == before

    purged = manage_py("purge_completed", "--exchange", pk, "--no-input")
    assert purged.returncode == 0, purged.stderr
    assert not Exchange.objects.filter(pk=completed_exchange.pk).exists()
