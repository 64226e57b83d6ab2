"""Jobs used only by tests; registered in the test process and in the qclusters it starts."""

import os
import socket
import time
from typing import Any

from jobs.registry import job
from jobs.runs.retry import RetryPolicy


@job("tests.sleep", timeout_seconds=120)
def sleep_job(*, seconds: float = 1.0) -> dict[str, Any]:
    """Holds its single-flight lock for `seconds`."""
    time.sleep(seconds)
    return {"slept": seconds}


@job(
    "tests.always_fail",
    retry=RetryPolicy(max_attempts=2, base_seconds=1, cap_seconds=2),
    timeout_seconds=60,
)
def always_fail(*, message: str = "boom") -> dict[str, Any]:
    """Fails every time: exercises retry and exhaustion."""
    raise RuntimeError(message)


@job("tests.tick", cron="* * * * *", timeout_seconds=60)
def tick() -> dict[str, Any]:
    """A cron job every minute."""
    return {"tick": True}


@job("tests.overrun", timeout_seconds=2)
def overrun(*, seconds: float = 30) -> dict[str, Any]:
    """Runs past its own time limit: django-q2 must stop it and we must record it."""
    time.sleep(seconds)
    return {"finished": True}


@job("tests.skip_me")
def skip_me(*, reason: str) -> dict[str, Any]:
    """Decides there is nothing to do."""
    from jobs.exceptions import JobSkipped

    raise JobSkipped(reason)


@job("tests.fail_with_token", retry=RetryPolicy(max_attempts=2, base_seconds=60))
def fail_with_token(*, token: str | None = None) -> dict[str, Any]:
    """Records a token in its own kwargs, then fails: the retry must carry the token."""
    from jobs.runs.current import update_run_kwargs

    update_run_kwargs(token="abc")
    raise RuntimeError("transient")


@job("tests.permanent_failure", retry=True)
def permanent_failure() -> dict[str, Any]:
    """Fails in a way no retry can fix."""
    from jobs.exceptions import PermanentJobError

    raise PermanentJobError("bad credentials")


@job("tests.flag_me")
def flag_me(*, reason: str) -> dict[str, Any]:
    """Finishes, but asks for a human to look."""
    from jobs.runs.current import flag_for_attention

    flag_for_attention(reason)
    return {"flagged": True}


@job("tests.record_host", single_flight=False, timeout_seconds=60)
def record_host(*, n: int, log: str, seconds: float = 0.2) -> dict[str, Any]:
    """Works `seconds`, then appends "n host pid" to `log` (one file every host writes to).

    The file is outside the database on purpose: it counts executions of the body, not
    JobRun rows (test_scale_out_hosts.py).
    """
    time.sleep(seconds)
    host = socket.gethostname()
    with open(log, "a") as f:  # one short O_APPEND write per execution
        f.write(f"{n} {host} {os.getpid()}\n")
    return {"n": n, "host": host}


@job(
    "tests.taken_over",
    retry=RetryPolicy(max_attempts=3, base_seconds=60, cap_seconds=60),
    timeout_seconds=60,
)
def taken_over(*, fail: bool = False) -> dict[str, Any]:
    """Loses its run mid-way: its database session is cut (its run's lock gone) and
    another worker claims the run, as after a database restart."""
    import threading

    from django.db import connection

    from jobs.runs import lifecycle
    from jobs.runs.current import current_run

    run = current_run()
    assert run is not None
    lifecycle.release(run.pk)  # the session that held the run is gone
    claimed = []

    def other_worker() -> None:
        claimed.append(lifecycle.claim(run.pk))
        connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join()
    assert claimed[0] is not None  # the other worker's claim
    if fail:
        raise RuntimeError("late failure")
    return {"late": True}


@job("tests.permanent_no_retry", retry=False)
def permanent_no_retry() -> dict[str, Any]:
    """Fails for good on a job that never retries (its only attempt is also its last)."""
    from jobs.exceptions import PermanentJobError

    raise PermanentJobError("account closed")


@job("tests.catch_up", cron="0 2 * * *", run_late_once=True)
def catch_up() -> dict[str, Any]:
    """A daily job whose slot runs even late (once), e.g. after the cluster was down."""
    return {"ran": True}


#: Set by a test: called with the seconds each step of tests.soft_limited takes, so the
#: test's frozen clock moves as the job works (no sleeping).
step_clock: Any = None


@job("tests.soft_limited", soft_timeout_seconds=60, timeout_seconds=120)
def soft_limited(*, steps: int = 10, step_seconds: float = 20, in_transaction: bool = False):
    """Works `steps` steps of `step_seconds`, reporting progress after each (its safe points)."""
    from django.db import transaction

    from jobs.runs.progress import report_progress
    from jobs.runs.soft_limit import checkpoint

    for step in range(1, steps + 1):
        if step_clock is not None:
            step_clock(step_seconds)
        if in_transaction:
            with transaction.atomic():  # inside its own transaction: not a safe point
                report_progress(done=step, total=steps, unit="steps")
        else:
            report_progress(done=step, total=steps, unit="steps")
    checkpoint()  # outside any transaction: a safe point
    return {"steps": steps}


@job("tests.fail_email_alerts_only", alerts="email")
def fail_email_alerts_only() -> dict[str, Any]:
    """Fails for good; its alerts go by email only (the registry's per-job channel)."""
    raise RuntimeError("no webhook for me")


@job("tests.maybe_fail")
def maybe_fail(*, fail: bool = False) -> dict[str, Any]:
    """Fails for good (no retry) when asked, else succeeds: an alert, then its resolution."""
    if fail:
        raise RuntimeError("asked to fail")
    return {"ok": True}
