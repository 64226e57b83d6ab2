"""Hourly wallet-pass sync (seed 003): push recently changed cards to Google and Apple wallets.

Unlike the seed, calls run concurrently on a bounded thread pool, so slow wallets
and backoff sleeps of one card never hold up the others; the sleep is injectable
so tests check the 1 s / 4 s / 16 s delays without waiting for them.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from jobs.context import flag_for_attention, report_progress
from loyalty.conf import loyalty_settings
from loyalty.exceptions import TransientWalletError, WalletError
from loyalty.models import LoyaltyCard, LoyaltyTransaction
from loyalty.services.wallet_clients import CardSnapshot, WalletClients, wallet_clients

logger = logging.getLogger("loyalty.wallet_sync")

#: Delay before attempts 2, 3 and 4 (seed 003's runbook table: 0 s, 1 s, 5 s, 21 s elapsed).
RETRY_DELAYS_SECONDS = (1.0, 4.0, 16.0)
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
#: Over this share of failed cards the run is flagged and an alert logged.
ALERT_FAILURE_RATE = 0.05
#: More failed cards than this points at the wallet API, not at single cards.
SYSTEMIC_FAILURES = 10
#: failed_card_ids kept in the result (history rows stay small).
MAX_REPORTED_IDS = 500
#: Progress is reported every this many finished cards (and once at the end).
PROGRESS_EVERY_CARDS = 25


def _seed_wait(retry_state: RetryCallState) -> float:
    return RETRY_DELAYS_SECONDS[min(retry_state.attempt_number, len(RETRY_DELAYS_SECONDS)) - 1]


def cards_to_sync(
    *, card_ids: list[int] | None = None, since: datetime | None = None
) -> list[CardSnapshot]:
    """Active cards with a wallet pass: the given ones, or those with a transaction since `since`."""
    cards = LoyaltyCard.objects.filter(is_active=True).filter(
        ~Q(google_object_id="") | ~Q(apple_serial_number="")
    )
    if card_ids is not None:
        cards = cards.filter(pk__in=card_ids)
    else:
        recent = LoyaltyTransaction.objects.filter(transaction_at__gte=since).values("card_id")
        cards = cards.filter(pk__in=recent)
    fields = [
        "id",
        "number",
        "points_balance",
        "stamp_count",
        "google_object_id",
        "apple_serial_number",
    ]
    return [
        CardSnapshot(card_id=row.pop("id"), **row) for row in cards.order_by("pk").values(*fields)
    ]


def sync_card_to_wallets(
    card: CardSnapshot, *, clients: WalletClients, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Push one card to each wallet it has, 4 attempts per wallet on transient errors."""
    for has_pass, client in (
        (card.google_object_id, clients.google),
        (card.apple_serial_number, clients.apple),
    ):
        if not has_pass:
            continue
        retrying = Retrying(
            stop=stop_after_attempt(MAX_ATTEMPTS),
            wait=_seed_wait,
            retry=retry_if_exception_type(TransientWalletError),
            sleep=sleep,
            reraise=True,
        )
        retrying(client.push, card)


def sync_wallet_passes(
    *,
    card_ids: list[int] | None = None,
    since: datetime | None = None,
    clients: WalletClients | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_workers: int | None = None,
) -> dict[str, Any]:
    """Sync the cards changed since `since` (default: the last hour), or the given cards."""
    started = time.monotonic()
    if card_ids is None and since is None:
        window = loyalty_settings.WALLET_SYNC_WINDOW_MINUTES
        since = timezone.now() - timedelta(minutes=window)
    cards = cards_to_sync(card_ids=card_ids, since=since)
    clients = clients or wallet_clients()
    workers = max_workers or loyalty_settings.WALLET_SYNC_CONCURRENCY
    report_progress(done=0, total=len(cards), unit="cards", failed=0)

    def attempt(card: CardSnapshot) -> tuple[int, str | None]:
        try:
            sync_card_to_wallets(card, clients=clients, sleep=sleep)
        except WalletError as exc:
            return card.card_id, str(exc)
        except Exception as exc:  # one card never stops the batch
            logger.exception("card %s: unexpected wallet sync error", card.card_id)
            return card.card_id, f"{type(exc).__name__}: {exc}"
        return card.card_id, None

    failed: list[int] = []
    if cards:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(cards)))) as pool:
            # pool.map yields in order, here in the job's thread (report_progress needs it).
            for i, (done_card_id, error) in enumerate(pool.map(attempt, cards), start=1):
                if error is not None:
                    failed.append(done_card_id)
                    logger.warning(
                        "card %s: wallet sync failed after %s attempts: %s",
                        done_card_id,
                        MAX_ATTEMPTS,
                        error,
                    )
                if i % PROGRESS_EVERY_CARDS == 0 and i < len(cards):
                    report_progress(done=i, total=len(cards), unit="cards", failed=len(failed))
    report_progress(done=len(cards), total=len(cards), unit="cards", failed=len(failed))
    return _result(cards=cards, failed=failed, since=since, card_ids=card_ids, started=started)


def _result(
    *,
    cards: list[CardSnapshot],
    failed: list[int],
    since: datetime | None,
    card_ids: list[int] | None,
    started: float,
) -> dict[str, Any]:
    considered = len(cards)
    failure_rate = len(failed) / considered if considered else 0.0
    alert = failure_rate > ALERT_FAILURE_RATE
    systemic = len(failed) > SYSTEMIC_FAILURES
    result: dict[str, Any] = {
        "cards_considered": considered,
        "synced": considered - len(failed),
        "failed": len(failed),
        "failed_card_ids": sorted(failed)[:MAX_REPORTED_IDS],
        "failure_rate": round(failure_rate, 4),
        "alert": alert,
        "systemic": systemic,
        "since": since.isoformat() if since else None,
        "card_ids": card_ids[:MAX_REPORTED_IDS] if card_ids is not None else None,
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }
    if alert:
        reason = (
            f"wallet sync failure rate {failure_rate:.1%} > {ALERT_FAILURE_RATE:.0%} "
            f"({len(failed)} of {considered} cards)"
            + ("; systemic: check wallet API status and credentials" if systemic else "")
        )
        logger.error("ALERT loyalty.sync_wallet_passes: %s", reason)
        flag_for_attention(reason)
    elif systemic:
        logger.error("loyalty.sync_wallet_passes: %s cards failed, systemic", len(failed))
        flag_for_attention(f"{len(failed)} wallet sync failures: systemic API issue likely")
    return result
