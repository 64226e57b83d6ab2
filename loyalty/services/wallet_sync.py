"""Wallet-pass sync: bring the Google and Apple passes of the cards behind up to date.

Cards are picked by what their wallets confirmed (wallet_state), so a failed card is
tried again every run until its wallet confirms it; each wallet of a card is tried on
its own. Calls run on a bounded thread pool with tenacity retries (injectable sleep);
the database work stays in this thread. docs/loyalty.md tells the stops and alerts.

The minutely sweep (push_wallet_changes) takes the cards the card trigger (migration 0005)
queued in loyalty_walletchange, in one statement, and syncs those behind; a sweep that
dies after taking them loses nothing: they stay behind for the hourly run.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.utils import timezone
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_chain, wait_fixed

from jobs.runs.progress import report_progress
from loyalty.conf import loyalty_settings
from loyalty.exceptions import (
    PermanentWalletError,
    TransientWalletError,
    WalletCredentialsError,
    WalletError,
)
from loyalty.services import wallet_state
from loyalty.services.apns import GONE
from loyalty.services.wallet_clients import WalletClients, wallet_clients
from loyalty.services.wallet_report import CardOutcome, WalletGate, sync_result
from loyalty.services.wallet_state import CardSnapshot

logger = logging.getLogger("loyalty.wallet_sync")

#: Delay before attempts 2, 3 and 4 (the wallet runbook's table: 0 s, 1 s, 5 s, 21 s elapsed).
RETRY_DELAYS_SECONDS = (1.0, 4.0, 16.0)
#: Progress is reported every this many finished cards (and once at the end).
PROGRESS_EVERY_CARDS = 25
#: Outcomes are written to the sync state every this many cards (a killed run keeps them).
RECORD_EVERY_CARDS = 200


def _retrying(sleep: Callable[[float], None]) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(len(RETRY_DELAYS_SECONDS) + 1),
        wait=wait_chain(*map(wait_fixed, RETRY_DELAYS_SECONDS)),
        retry=retry_if_exception_type(TransientWalletError),
        sleep=sleep,
        reraise=True,
    )


def _answering(gate: WalletGate, call: Callable[..., Any]) -> Callable[..., Any]:
    """`call`, telling the gate after each attempt; refused credentials stop it first."""

    def attempt(*args: Any) -> Any:
        try:
            return call(*args)
        except WalletCredentialsError as exc:
            gate.stop(f"{gate.name}: credentials refused: {exc}")
            raise
        finally:
            gate.answered()

    return attempt


def _sync_wallet(
    wallet: str,
    card: CardSnapshot,
    outcome: CardOutcome,
    *,
    clients: WalletClients,
    gate: WalletGate,
    retrying: Retrying,
) -> str:
    """One wallet of one card: synced or recreated (Apple: devices counted on `outcome`)."""
    if wallet == "google":
        assert clients.google is not None
        return retrying(_answering(gate, clients.google.push), card)
    assert clients.apple is not None
    push = _answering(gate, clients.apple.push)
    pushed, gone = 0, []
    for registration_id, token in card.apple_devices:
        if retrying(push, token) == GONE:
            gone.append((registration_id, token))
        else:
            pushed += 1
    outcome.devices_pushed, outcome.gone_registrations = pushed, gone
    return "synced"


def sync_card_to_wallets(
    card: CardSnapshot,
    *,
    clients: WalletClients,
    gates: dict[str, WalletGate],
    sleep: Callable[[float], None],
) -> CardOutcome:
    """Try each wallet of one card on its own, 4 attempts per call on transient errors."""
    outcome = CardOutcome(card_id=card.card_id, version=card.balance_version)
    for wallet, has_pass in (
        ("google", card.google_object_id),
        ("apple", card.apple_serial_number),
    ):
        if not has_pass:
            continue
        gate = gates[wallet]
        gate.wait_for_first_answer()
        status, error = "skipped", gate.stopped
        try:
            if not gate.stopped:
                status = _sync_wallet(
                    wallet, card, outcome, clients=clients, gate=gate, retrying=_retrying(sleep)
                )
                error = ""
        except WalletCredentialsError as exc:  # the gate is stopped (_answering)
            status, error = "skipped", str(exc)
        except PermanentWalletError as exc:  # this card, for good: quarantined
            status, error = "refused", str(exc)
        except WalletError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # one card never stops the batch
            logger.exception("card %s: unexpected %s sync error", card.card_id, wallet)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            gate.answered()  # also when no call was made (an Apple pass without devices)
        if status in ("failed", "refused"):
            logger.warning("card %s: %s sync %s: %s", card.card_id, wallet, status, error)
        outcome.results[wallet] = (status, error)
        gate.record(card.card_id, status)
    return outcome


def sync_wallet_passes(
    *,
    card_ids: list[int] | None = None,
    since: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_workers: int | None = None,
    max_cards: int | None = None,
    behind_among: list[int] | None = None,
) -> dict[str, Any]:
    """Sync the cards whose wallets are behind (at most `max_cards`; or only those among
    `behind_among`), or the given cards, or every card with a transaction since `since`,
    whatever their wallets confirmed."""
    started = time.monotonic()
    limit = max_cards or int(loyalty_settings.WALLET_SYNC_MAX_CARDS_PER_RUN)
    if behind_among is not None:
        mode, wanted = "changes", wallet_state.cards_behind(among=behind_among)
    elif card_ids is None and since is None:
        mode, wanted = "behind", wallet_state.cards_behind(limit=limit)
    else:
        mode = "cards" if card_ids is not None else "since"
        wanted = wallet_state.cards_with_passes(card_ids=card_ids, since=since)
    cards = wallet_state.snapshots(wanted)
    clients = wallet_clients()
    gates = {
        wallet: WalletGate(wallet, stopped=f"{wallet}: {problem}" if problem else "")
        for wallet, problem in (
            ("google", clients.google_problem),
            ("apple", clients.apple_problem),
        )
    }
    if clients.apple is not None:
        wallet_state.publish_apple_tags([c.card_id for c in cards if c.apple_devices])
    workers = max_workers or int(loyalty_settings.WALLET_SYNC_CONCURRENCY)
    report_progress(done=0, total=len(cards), unit="cards", failed=0)
    done: list[CardOutcome] = []
    pending: list[CardOutcome] = []
    removed = failed = 0
    # pool.map yields the outcomes in card order, here in the job's thread.
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(cards)))) as pool:
        outcomes = pool.map(
            lambda card: sync_card_to_wallets(card, clients=clients, gates=gates, sleep=sleep),
            cards,
        )
        for i, outcome in enumerate(outcomes, start=1):
            done.append(outcome)
            pending.append(outcome)
            failed += bool(outcome.statuses & {"failed", "refused"})  # did not sync
            if len(pending) >= RECORD_EVERY_CARDS:
                removed += _record(pending)
                pending = []
            if i % PROGRESS_EVERY_CARDS == 0 and i < len(cards):
                report_progress(done=i, total=len(cards), unit="cards", failed=failed)
    removed += _record(pending)
    report_progress(done=len(cards), total=len(cards), unit="cards", failed=failed)
    return sync_result(
        outcomes=done,
        gates=gates,
        mode=mode,
        since=since,
        card_ids=card_ids,
        devices_removed=removed,
        behind_after=wallet_state.count_behind(),
        elapsed_seconds=time.monotonic() - started,
    )


def _record(outcomes: list[CardOutcome]) -> int:
    """Write a chunk's outcomes to the sync state; remove the devices APNs said are gone."""
    rows = [
        (
            o.card_id,
            wallet,
            o.version,
            "synced" if status in ("synced", "recreated") else status,
            error,
        )
        for o in outcomes
        for wallet, (status, error) in o.results.items()
        if status != "skipped"
    ]
    wallet_state.record_outcomes(rows, now=timezone.now())
    return wallet_state.remove_registrations([r for o in outcomes for r in o.gone_registrations])


def push_wallet_changes(
    *, sleep: Callable[[float], None] = time.sleep, max_cards: int | None = None
) -> dict[str, Any]:
    """Push the wallets behind of the cards changed since the last sweep (idle: one query)."""
    taken = wallet_state.take_changes(
        limit=max_cards or int(loyalty_settings.WALLET_SYNC_MAX_CARDS_PER_RUN)
    )
    if not taken:
        return {"mode": "changes", "cards_considered": 0, "changes_taken": 0}
    return {
        **sync_wallet_passes(behind_among=list(taken), sleep=sleep),
        "changes_taken": len(taken),
        "oldest_change_waited_seconds": round(max(taken.values()), 3),
    }
