"""The minutely wallet sweep: passes current within a minute of a change, at no cost idle.

The card trigger (migration 0005) queues a card in loyalty_walletchange in the same
transaction as any change of what its passes show; the sweep takes (deletes) the
queued cards in one statement and pushes the wallets of those that are behind, through
the hourly sync's own service (same clients, retries, gates and bookkeeping). An idle
minute is that one statement on an empty table: no other query, no remote call.

A change committed just after a sweep took the queue waits for the next sweep, one
minute later: the lag from commit to push is at most a minute plus the sweep's own
time (django-q's scheduler fires a cron job at a fixed phase after its minute, so
sweeps are a minute apart). A sweep that dies after taking its cards loses nothing:
they stay behind in WalletSyncState, and the hourly run is the safety net.
"""

import time
from collections.abc import Callable
from typing import Any

from loyalty.conf import loyalty_settings
from loyalty.services import wallet_state
from loyalty.services.wallet_clients import WalletClients
from loyalty.services.wallet_sync import sync_wallet_passes


def push_wallet_changes(
    *,
    clients: WalletClients | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_cards: int | None = None,
) -> dict[str, Any]:
    """Push the wallets behind of the cards changed since the last sweep."""
    limit = max_cards or int(loyalty_settings.WALLET_SYNC_MAX_CARDS_PER_RUN)
    taken = wallet_state.take_changes(limit=limit)
    if not taken:
        return {"mode": "changes", "cards_considered": 0, "changes_taken": 0}
    result = sync_wallet_passes(
        behind_among=list(taken), clients=clients, sleep=sleep, max_cards=limit
    )
    return {
        **result,
        "changes_taken": len(taken),
        "oldest_change_waited_seconds": round(max(taken.values()), 3),
    }
