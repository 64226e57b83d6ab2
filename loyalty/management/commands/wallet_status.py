"""manage.py wallet_status: the same as /wallet-status/, one line per wallet."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from loyalty.services.wallet_status import wallet_statuses


class Command(BaseCommand):
    help = (
        "Per wallet (Google, Apple): credentials configured and accepted (asks the wallet now), "
        "cards behind, the last sync run's failures. Exit 1 when a wallet is not OK. Run it "
        "after changing wallet credentials and when a sync run is flagged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = wallet_statuses(fresh=True)
        for status in statuses:
            self.stdout.write(status.line())
        bad = [s.wallet for s in statuses if not s.ok]
        if bad:
            raise CommandError(f"wallet(s) not OK: {', '.join(bad)}", returncode=1)
