"""Checks of the exchanges jobs' arguments, run before a run exists (jobs.arguments).

The same rules as the app's commands, so `run_job exchanges.match_exchange exchange_id=9`
exits 2 with the command's line instead of recording a failed run.
"""

from typing import Any

from exchanges.exceptions import ExchangesError
from exchanges.models import Exchange
from exchanges.services.matching import check_matchable
from jobs.exceptions import BadJobArguments


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
