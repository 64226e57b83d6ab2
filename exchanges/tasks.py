"""Job entry points of the exchanges app (thin: each calls one service), and the checks
of their arguments."""

from typing import Annotated, Any

from exchanges.exceptions import ExchangesError
from exchanges.models import Exchange
from exchanges.services.cleanup import cleanup_rate_limits, cleanup_sessions, cleanup_tokens
from exchanges.services.completion import complete_exchanges
from exchanges.services.matching import check_matchable, match_exchange
from exchanges.services.purge import purge_completed_exchanges
from exchanges.services.reminders import send_due_reminders
from jobs.arguments import Range
from jobs.exceptions import BadJobArguments
from jobs.registry import job


# The jobs' `validate` checks, run before a run exists (jobs.arguments): a bad id or state
# is refused in one line, exit 2, instead of a failed run.
def check_match_arguments(kwargs: dict[str, Any]) -> None:
    exchange_id = kwargs["exchange_id"]
    try:
        check_matchable(
            Exchange.objects.filter(pk=exchange_id).first(),
            exchange_id,
            rematch=bool(kwargs.get("rematch")),
        )
    except ExchangesError as exc:
        raise BadJobArguments(str(exc)) from None


def check_reminder_arguments(kwargs: dict[str, Any]) -> None:
    exchange_id = kwargs.get("exchange_id")
    if exchange_id is not None:
        _check_states([exchange_id], Exchange.State.MATCHED, "send reminders")


def check_purge_arguments(kwargs: dict[str, Any]) -> None:
    if kwargs.get("exchange_ids"):
        _check_states(kwargs["exchange_ids"], Exchange.State.COMPLETED, "can be purged")


def _check_states(ids: list[int], wanted: str, what: str) -> None:
    states = dict(Exchange.objects.filter(pk__in=ids).values_list("pk", "state"))
    for pk in ids:
        if pk not in states:
            raise BadJobArguments(f"exchange {pk} does not exist")
        if states[pk] != wanted:
            raise BadJobArguments(f"exchange {pk} is {states[pk]}; only {wanted} exchanges {what}")


# Single flight per exchange; a lost connection is retried (the draw is one transaction).
@job(
    "exchanges.match_exchange",
    lock_key=lambda kwargs: f"exchanges:match:{kwargs['exchange_id']}",
    retry=True,
    timeout_seconds=300,
    permissions=("exchanges.change_exchange",),  # as the admin's "Match"
    validate=check_match_arguments,
)
def match_exchange_task(
    *, exchange_id: Annotated[int, Range(min=1)], rematch: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """Draw names for one exchange (or, `rematch`, clear its draw and draw again), notify
    each giver, plan its reminders."""
    return match_exchange(exchange_id=exchange_id, rematch=rematch, dry_run=dry_run)


# No retry: the next minute's sweep is the retry, and the grace rule bounds lateness.
@job(
    "exchanges.send_due_reminders",
    cron="* * * * *",
    timeout_seconds=300,
    validate=check_reminder_arguments,
)
def send_due_reminders_task(
    *, exchange_id: int | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Queue due reminders (one per participant per interval); mark those over 1 h late missed."""
    return send_due_reminders(exchange_id=exchange_id, dry_run=dry_run)


@job(
    "exchanges.auto_complete",
    cron="0 0 * * *",
    retry=True,
    timeout_seconds=600,
    run_late_once=True,  # a daily slot missed while the cluster was down still runs
)
def auto_complete_task(
    *, exchange_ids: list[int] | None = None, include_future: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """Mark matched exchanges whose date has passed completed."""
    return complete_exchanges(
        exchange_ids=exchange_ids, include_future=include_future, dry_run=dry_run
    )


@job(
    "exchanges.purge_completed",
    cron="0 2 * * *",
    retry=True,
    permissions=("exchanges.delete_exchange",),  # as the admin's "Purge now"
    validate=check_purge_arguments,
    run_late_once=True,
)
def purge_completed_task(
    *, exchange_ids: list[int] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Warn organizers once 7 days ahead, then delete exchanges completed 30+ days ago."""
    return purge_completed_exchanges(exchange_ids=exchange_ids, dry_run=dry_run)


@job("exchanges.cleanup_tokens", cron="0 * * * *", retry=True)
def cleanup_tokens_task(*, dry_run: bool = False) -> dict[str, Any]:
    """Delete expired login tokens and tokens used more than 24 h ago."""
    return cleanup_tokens(dry_run=dry_run)


@job(
    "exchanges.cleanup_sessions",
    cron="0 3 * * *",
    retry=True,
    run_late_once=True,
)
def cleanup_sessions_task(*, dry_run: bool = False) -> dict[str, Any]:
    """Delete expired sessions (Django's clearsessions, batched and counted)."""
    return cleanup_sessions(dry_run=dry_run)


@job(
    "exchanges.cleanup_rate_limits",
    cron="0 4 * * *",
    retry=True,
    run_late_once=True,
)
def cleanup_rate_limits_task(*, dry_run: bool = False) -> dict[str, Any]:
    """Delete expired rate-limit counters."""
    return cleanup_rate_limits(dry_run=dry_run)
