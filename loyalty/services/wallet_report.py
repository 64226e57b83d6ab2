"""Per-wallet bookkeeping of one sync run, and the result it leaves in history."""

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobs.runs.current import flag_for_attention

logger = logging.getLogger("loyalty.wallet_sync")

#: Over this share of cards attempted that failed transiently (after their retries) the
#: run is flagged and an alert logged. Cards refused for good are quarantined and
#: reported apart: a few of them must not keep a quiet hour at "3 of 3 = 100 %".
ALERT_FAILURE_RATE = 0.05
#: More failed cards than this points at the wallet API, not at single cards.
SYSTEMIC_FAILURES = 10
#: How long calls wait for a wallet's first answer (beyond it they go anyway).
FIRST_ANSWER_WAIT_SECONDS = 60.0
#: failed_card_ids kept in the result (history rows stay small).
MAX_REPORTED_IDS = 500


@dataclass
class CardOutcome:
    card_id: int
    #: The balance_version pushed (what the wallets confirm on success).
    version: int
    #: wallet -> (status, error); status: synced | recreated | failed (transiently, after
    #: its retries) | refused (for good: quarantined) | skipped (the wallet is stopped).
    results: dict[str, tuple[str, str]] = field(default_factory=dict)
    devices_pushed: int = 0
    #: (registration id, push token) of the devices APNs said are gone.
    gone_registrations: list[tuple[int, str]] = field(default_factory=list)

    @property
    def statuses(self) -> set[str]:
        return {status for status, _ in self.results.values()}


class WalletGate:
    """One wallet's counts in a run, and whether the run still calls it (thread-safe): not
    once its credentials are refused or missing, or SYSTEMIC_FAILURES cards failed and none
    synced (the wallet is down: 4 attempts for each card left would change nothing)."""

    def __init__(self, name: str, *, stopped: str = "") -> None:
        self.name = name
        self.stopped = stopped
        self.counts = {"synced": 0, "recreated": 0, "failed": 0, "refused": 0, "skipped": 0}
        self.failed_card_ids: list[int] = []
        self._lock = threading.Lock()
        self._claimed = False
        self._first_answer = threading.Event()

    def wait_for_first_answer(self) -> None:
        """The first caller goes at once; the others wait until the wallet has answered it.

        So refused credentials cost one call (the gate is stopped before the others go
        on), not one per card in flight; any answer, even a 503, lets everyone go.
        """
        with self._lock:
            if not self._claimed:
                self._claimed = True
                return
        self._first_answer.wait(FIRST_ANSWER_WAIT_SECONDS)

    def answered(self) -> None:
        self._first_answer.set()

    def stop(self, reason: str) -> None:
        with self._lock:
            if not self.stopped:
                self.stopped = reason[:300]
                logger.error("loyalty.sync_wallet_passes stops a wallet: %s", self.stopped)

    def record(self, card_id: int, status: str) -> None:
        with self._lock:
            self.counts[status] += 1
            if status == "failed":
                self.failed_card_ids.append(card_id)
            ok = self.counts["synced"] + self.counts["recreated"]
            down = self.counts["failed"] > SYSTEMIC_FAILURES and ok == 0
        if down:
            self.stop(
                f"{self.name}: {SYSTEMIC_FAILURES}+ cards failed and none synced "
                "(wallet down?); the rest is left for the next run"
            )

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts,
            "failed_card_ids": sorted(self.failed_card_ids)[:MAX_REPORTED_IDS],
            "stopped": self.stopped or None,
        }


def sync_result(
    *,
    outcomes: list[CardOutcome],
    gates: dict[str, WalletGate],
    mode: str,
    since: datetime | None,
    card_ids: list[int] | None,
    devices_removed: int,
    behind_after: dict[str, int],
    elapsed_seconds: float,
) -> dict[str, Any]:
    """The run's result (history); flags the run for stopped wallets, quarantined cards,
    alerts and systemic failures."""
    attempted = sum(1 for o in outcomes if o.statuses - {"skipped"})
    failed = sorted(o.card_id for o in outcomes if "failed" in o.statuses)
    quarantined = sorted(o.card_id for o in outcomes if "refused" in o.statuses)
    synced = sum(1 for o in outcomes if o.statuses and o.statuses <= {"synced", "recreated"})
    failure_rate = len(failed) / attempted if attempted else 0.0
    alert = failure_rate > ALERT_FAILURE_RATE
    systemic = len(failed) > SYSTEMIC_FAILURES
    wallets = {name: gate.summary() for name, gate in gates.items()}
    wallets["apple"]["devices_pushed"] = sum(o.devices_pushed for o in outcomes)
    wallets["apple"]["devices_removed"] = devices_removed
    # A wallet stopped before it had a card to sync (e.g. not configured, no passes) is no news.
    stopped = [
        g.stopped
        for g in gates.values()
        if g.stopped and (g.counts["skipped"] or g.counts["failed"] or g.counts["synced"])
    ]
    result: dict[str, Any] = {
        "mode": mode,
        "cards_considered": len(outcomes),
        "cards_attempted": attempted,
        "synced": synced,
        "failed": len(failed),
        "failed_card_ids": failed[:MAX_REPORTED_IDS],
        "quarantined": len(quarantined),
        "quarantined_card_ids": quarantined[:MAX_REPORTED_IDS],
        "skipped": sum(1 for o in outcomes if "skipped" in o.statuses),
        "failure_rate": round(failure_rate, 4),
        "alert": alert,
        "systemic": systemic,
        "stopped": stopped,
        "wallets": wallets,
        "behind_after": behind_after,
        "since": since.isoformat() if since else None,
        "card_ids": card_ids[:MAX_REPORTED_IDS] if card_ids is not None else None,
        "elapsed_seconds": round(elapsed_seconds, 3),
    }
    for reason in stopped:
        flag_for_attention(reason)
    if quarantined:  # once: a quarantined card is not picked again unchanged
        ids = result["quarantined_card_ids"]
        reason = (
            f"{len(ids)} card(s) refused for good by their wallet, quarantined until they"
            f" change (fix, then re-sync them): {ids[:20]}"
        )
        logger.warning("loyalty.sync_wallet_passes: %s", reason)
        flag_for_attention(reason)
    if alert:
        reason = (
            f"wallet sync failure rate {result['failure_rate']:.1%} > {ALERT_FAILURE_RATE:.0%} "
            f"({len(failed)} of {attempted} cards attempted failed after retries)"
            + ("; systemic: check wallet API status and credentials" if systemic else "")
        )
        logger.error("ALERT loyalty.sync_wallet_passes: %s", reason)
        flag_for_attention(reason)
    elif systemic:
        logger.error("loyalty.sync_wallet_passes: %s cards failed, systemic", len(failed))
        flag_for_attention(f"{len(failed)} wallet sync failures: systemic API issue likely")
    return result
