"""Sentry, only when SENTRY_DSN is set (docs/operations.md "Sentry"): a failed run is reported
once, by the runner; log records are breadcrumbs, else its "failed" lines would report it again."""

import logging
import sys
from typing import Any

#: Argument names whose values never leave the process (matched as substrings).
SECRET_WORDS = (
    "auth",
    "cookie",
    "credential",
    "dsn",
    "key",
    "owner",
    "passw",
    "secret",
    "session",
    "signature",
    "token",
)
FILTERED = "[Filtered]"


def init_sentry(dsn: str, *, environment: str = "", **options: Any) -> None:
    """Start the SDK for this process (`options`: a test's local transport)."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        integrations=[DjangoIntegration(), LoggingIntegration(event_level=None)],
        data_collection={
            "user_info": False,
            "stack_frame_variables": False,  # a client's frame holds its API key
            "http_bodies": [],
            "database_query_data": False,
        },
        send_client_reports=False,
        auto_session_tracking=False,
        **options,
    )


def scrub(value: Any) -> Any:
    """`value` with every entry whose name looks like a secret replaced by [Filtered]."""
    if isinstance(value, dict):
        return {
            key: FILTERED if any(word in str(key).lower() for word in SECRET_WORDS) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


def report_failed_run(run: Any, exc: BaseException) -> None:
    """Report a run's failure to Sentry once (a no-op without SENTRY_DSN; never raises:
    reporting must not change the run's outcome)."""
    sentry_sdk = sys.modules.get("sentry_sdk")  # None: no SENTRY_DSN, not even loaded here
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        return
    try:
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job", run.job)
            scope.set_tag("run_id", str(run.pk))
            scope.set_context(
                "job_run",
                {
                    "job": run.job,
                    "run_id": run.pk,
                    "attempt": run.attempt,
                    "trigger": run.trigger,
                    "arguments": scrub(dict(run.kwargs or {})),
                },
            )
            sentry_sdk.capture_exception(exc)
    except Exception:
        logging.getLogger("jobs").exception("could not report %s #%s to Sentry", run.job, run.pk)
