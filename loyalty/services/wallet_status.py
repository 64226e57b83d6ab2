"""Per wallet: credentials configured and accepted, cards behind, the last run's failures.

Shared by /wallet-status/, `manage.py wallet_status` and the `wallets` health check.
"Accepted" asks the wallet: Google mints (or reuses) an access token, APNs gets a push
to an all-zero device token (400 BadDeviceToken: key and topic accepted; 403: not).
Answers are kept PROBE_TTL_SECONDS so a polled /health/ does not call Apple and Google
every time.
"""

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from jobs.models import JobRun
from loyalty.exceptions import WalletCredentialsError, WalletError, WalletNotConfigured
from loyalty.services import wallet_state
from loyalty.services.apple_passes import PassSigner
from loyalty.services.wallet_clients import WalletClients, wallet_clients

SYNC_JOB = "loyalty.sync_wallet_passes"
PROBE_TTL_SECONDS = 60.0
_probes: dict[tuple[str, int], tuple[float, bool | None, str]] = {}
_probe_lock = threading.Lock()


@dataclass(frozen=True)
class WalletStatus:
    wallet: str
    configured: bool
    #: True accepted, False refused, None not asked (not configured) or unreachable.
    accepted: bool | None
    problem: str
    cards_behind: int
    last_run_id: int | None
    last_run_failed: int | None
    last_run_stopped: str | None

    @property
    def ok(self) -> bool:
        if self.last_run_stopped:  # e.g. a token minted fine but the API refused it
            return False
        return self.accepted is True or (not self.configured and not self.cards_behind)

    def line(self) -> str:
        if self.accepted:
            state = ("OK" if self.ok else "FAIL") + " credentials accepted"
        elif not self.configured:
            state = ("OK " if self.ok else "FAIL ") + self.problem
        else:
            state = f"FAIL {self.problem}"
        run = (
            f"last run #{self.last_run_id}: {self.last_run_failed} failed"
            + (f", stopped ({self.last_run_stopped})" if self.last_run_stopped else "")
            if self.last_run_id
            else "no run yet"
        )
        return f"{self.wallet}: {state}; {self.cards_behind} card(s) behind; {run}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _probe(wallet: str, clients: WalletClients, *, fresh: bool) -> tuple[bool | None, str]:
    client = clients.google if wallet == "google" else clients.apple
    key = (wallet, id(client))
    with _probe_lock:
        cached = _probes.get(key)
    if cached and not fresh and time.monotonic() - cached[0] < PROBE_TTL_SECONDS:
        return cached[1], cached[2]
    assert client is not None
    try:
        if wallet == "apple":
            PassSigner.from_settings()  # the passes must be signable too
        client.check_credentials(force=fresh)
        answer: tuple[bool | None, str] = (True, "")
    except WalletNotConfigured as exc:
        answer = (False, f"pass signing: {exc}")
    except WalletCredentialsError as exc:
        answer = (False, f"credentials refused: {exc}")
    except WalletError as exc:
        answer = (None, f"unreachable: {exc}")
    with _probe_lock:
        _probes[key] = (time.monotonic(), *answer)
    return answer


def _last_run() -> JobRun | None:
    return (
        JobRun.objects.filter(
            job=SYNC_JOB, status__in=[JobRun.Status.SUCCEEDED, JobRun.Status.FAILED]
        )
        .order_by("-finished_at", "-pk")
        .only("pk", "result")
        .first()
    )


def wallet_statuses(*, fresh: bool = False) -> list[WalletStatus]:
    clients = wallet_clients()
    behind = wallet_state.count_behind()
    run = _last_run()
    wallets = (run.result or {}).get("wallets", {}) if run else {}
    statuses = []
    for wallet, problem in (("google", clients.google_problem), ("apple", clients.apple_problem)):
        # Settings present but unusable (unreadable file, bad key) count as configured.
        configured = not problem.startswith("not configured")
        accepted: bool | None = False if problem and configured else None
        if not problem:
            accepted, problem = _probe(wallet, clients, fresh=fresh)
        summary = wallets.get(wallet, {})
        statuses.append(
            WalletStatus(
                wallet=wallet,
                configured=configured,
                accepted=accepted,
                problem=problem,
                cards_behind=behind[wallet],
                last_run_id=run.pk if run else None,
                last_run_failed=summary.get("failed") if run else None,
                last_run_stopped=summary.get("stopped") if run else None,
            )
        )
    return statuses
