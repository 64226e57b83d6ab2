"""Per wallet: OK, WARN or FAIL, with the reason first, and what the operator needs to act.

Shared by /wallet-status/, `manage.py wallet_status` and the `wallets` health check; the
rules (`WalletStatus.verdict`) are the runbook's (docs/loyalty.md). Answers of the wallets
are kept PROBE_TTL_SECONDS per client (new settings make a new client, hence a live
probe); a fresh probe from the web is allowed once per FRESH_EVERY_SECONDS across
processes (the shared cache), so a reloaded page cannot hammer Apple and Google.
"""

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.core.cache import cache
from django.db.models import Max
from django.utils import timezone

from jobs.models import JobRun
from loyalty.exceptions import WalletCredentialsError, WalletError, WalletNotConfigured
from loyalty.models import LoyaltyCard, WalletSyncState
from loyalty.services import wallet_state
from loyalty.services.apple_passes import PassSigner
from loyalty.services.wallet_clients import WalletClients, wallet_clients
from loyalty.services.wallet_report import ALERT_FAILURE_RATE, SYSTEMIC_FAILURES

#: The jobs that sync wallets: the hourly catch-up and the minutely sweep of changes.
SYNC_JOBS = ("loyalty.sync_wallet_passes", "loyalty.push_wallet_changes")
PROBE_TTL_SECONDS = 60.0
FRESH_EVERY_SECONDS = 10
#: (wallet, client id) -> (monotonic time, (accepted, problem, when asked))
_probes: dict[tuple[str, int], tuple[float, tuple[bool | None, str, datetime]]] = {}


class State(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class WalletStatus:
    wallet: str
    configured: bool
    #: True accepted, False refused, None not asked (not configured) or unreachable.
    accepted: bool | None
    problem: str
    #: When the wallet was last asked (None: not asked).
    probed_at: datetime | None
    cards_behind: int
    #: The last time this wallet confirmed a card (any run).
    last_success_at: datetime | None
    last_run_id: int | None
    last_run_finished_at: datetime | None
    #: Cards of this wallet the last run tried (synced, recreated or failed), and failed.
    last_run_attempted: int | None
    last_run_failed: int | None
    last_run_stopped: str | None

    @property
    def last_run_failure_rate(self) -> float | None:
        if not self.last_run_attempted:
            return None if self.last_run_id is None else 0.0
        return round((self.last_run_failed or 0) / self.last_run_attempted, 4)

    @property
    def state(self) -> State:
        return self.verdict()[0]

    @property
    def ok(self) -> bool:
        return self.state == State.OK

    def verdict(self) -> tuple[State, str]:
        """(state, the reason for it, as the line's first words)."""
        if not self.configured:
            if self.cards_behind:
                return State.FAIL, self.problem
            return State.OK, self.problem
        if self.accepted is False:
            return State.FAIL, self.problem
        stopped = self.last_run_stopped or ""
        if " cards failed and none synced" in stopped:
            return State.FAIL, f"wallet down in the last run ({stopped})"
        if (self.last_run_failed or 0) > SYSTEMIC_FAILURES:
            return State.FAIL, (
                f"{self.last_run_failed} cards failed in the last run: systemic, "
                "check the wallet's status and reach"
            )
        last_run_at = self.last_run_finished_at
        if stopped and not (self.probed_at and last_run_at and self.probed_at >= last_run_at):
            return State.FAIL, f"the last run was refused ({stopped}); not asked since"
        if self.accepted is None:
            return State.WARN, f"could not ask the wallet ({self.problem})"
        rate = self.last_run_failure_rate or 0.0
        if rate > ALERT_FAILURE_RATE:
            return State.WARN, (
                f"credentials accepted, but {rate:.1%} of the last run's cards failed "
                f"(alert above {ALERT_FAILURE_RATE:.0%})"
            )
        if stopped:
            return State.OK, "credentials accepted now (the last run was refused before the fix)"
        return State.OK, "credentials accepted"

    def line(self) -> str:
        state, reason = self.verdict()
        success = (
            f"last success {self.last_success_at:%Y-%m-%d %H:%M} UTC"
            if self.last_success_at
            else "no success yet"
        )
        if self.last_run_id is None:
            run = "no run yet"
        else:
            run = (
                f"last run #{self.last_run_id}: {self.last_run_failed or 0} of "
                f"{self.last_run_attempted or 0} card(s) failed "
                f"({self.last_run_failure_rate or 0:.1%})"
            )
        return (
            f"{self.wallet}: {state} {reason}; {self.cards_behind} card(s) behind; {success}; {run}"
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("probed_at", "last_success_at", "last_run_finished_at"):
            data[name] = data[name].isoformat() if data[name] else None
        return {
            **data,
            "last_run_failure_rate": self.last_run_failure_rate,
            "state": self.state.value,
            "ok": self.ok,
        }


def allow_fresh_probe() -> bool:
    """True at most once per FRESH_EVERY_SECONDS across processes (the shared cache)."""
    return cache.add("loyalty.wallet_status.fresh_probe", 1, timeout=FRESH_EVERY_SECONDS)


def _probe(
    wallet: str, clients: WalletClients, *, fresh: bool
) -> tuple[bool | None, str, datetime]:
    """(accepted, problem, when asked): the client's answer of the last PROBE_TTL_SECONDS."""
    client = clients.google if wallet == "google" else clients.apple
    cached = _probes.get((wallet, id(client)))
    if cached and not fresh and time.monotonic() - cached[0] < PROBE_TTL_SECONDS:
        return cached[1]
    try:
        if wallet == "apple":
            PassSigner.from_settings()  # the passes must be signable too
            clients.apple.check_credentials()  # type: ignore[union-attr]
        else:
            sample = (
                LoyaltyCard.objects.exclude(google_object_id="")
                .values_list("google_object_id", flat=True)
                .first()
            )
            clients.google.check_access(object_id=sample or "", force=fresh)  # type: ignore[union-attr]
        accepted, problem = True, ""
    except WalletNotConfigured as exc:
        accepted, problem = False, f"settings unusable: {exc}"
    except WalletCredentialsError as exc:
        accepted, problem = False, f"credentials refused: {exc}"
    except WalletError as exc:
        accepted, problem = None, f"unreachable: {exc}"
    answer = (accepted, problem, timezone.now())
    _probes[(wallet, id(client))] = (time.monotonic(), answer)
    return answer


def _last_run() -> JobRun | None:
    """The last finished sync run that had cards to do (idle sweeps are no news)."""
    return (
        JobRun.objects.filter(
            job__in=SYNC_JOBS, status__in=[JobRun.Status.SUCCEEDED, JobRun.Status.FAILED]
        )
        .exclude(result__cards_considered=0)
        .order_by("-finished_at", "-pk")
        .only("pk", "result", "finished_at")
        .first()
    )


def wallet_statuses(*, fresh: bool = False) -> list[WalletStatus]:
    clients = wallet_clients()
    behind = wallet_state.count_behind()
    successes = dict(
        WalletSyncState.objects.values("wallet")
        .annotate(last=Max("synced_at"))
        .values_list("wallet", "last")
    )
    run = _last_run()
    wallets = (run.result or {}).get("wallets", {}) if run else {}
    statuses = []
    for wallet, problem in (("google", clients.google_problem), ("apple", clients.apple_problem)):
        # Settings present but unusable (unreadable file, bad key) count as configured.
        configured = not problem.startswith("not configured")
        accepted: bool | None = False if problem and configured else None
        probed_at = None
        if problem and configured:
            problem = f"settings unusable: {problem}"
        if not problem:
            accepted, problem, probed_at = _probe(wallet, clients, fresh=fresh)
        summary = wallets.get(wallet, {})
        statuses.append(
            WalletStatus(
                wallet=wallet,
                configured=configured,
                accepted=accepted,
                problem=problem,
                probed_at=probed_at,
                cards_behind=behind[wallet],
                last_success_at=successes.get(wallet),
                last_run_id=run.pk if run else None,
                last_run_finished_at=run.finished_at if run else None,
                last_run_attempted=(
                    sum(summary.get(k, 0) for k in ("synced", "recreated", "failed"))
                    if run
                    else None
                ),
                last_run_failed=summary.get("failed", 0) if run else None,
                last_run_stopped=summary.get("stopped") if run else None,
            )
        )
    return statuses
