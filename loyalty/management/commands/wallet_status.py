"""manage.py wallet_status: the same as /wallet-status/, one line per wallet, asked now."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from loyalty.services.wallet_status import State, wallet_statuses


class Command(BaseCommand):
    help = (
        "Per wallet (Google, Apple): OK, WARN or FAIL and why, credentials asked now, cards "
        "behind, last success, the last sync run's failures. Exit 0 all OK, 1 a WARN (the "
        "last run crossed the 5% alert, or a wallet could not be asked), 2 a FAIL "
        "(credentials refused, not configured with passes, or a systemic run). Run it after "
        "changing wallet credentials and when a sync run is flagged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = wallet_statuses(fresh=True)
        for status in statuses:
            self.stdout.write(status.line())
        failed = [s.wallet for s in statuses if s.state == State.FAIL]
        warned = [s.wallet for s in statuses if s.state == State.WARN]
        if failed:
            raise CommandError(f"wallet(s) FAIL: {', '.join(failed)}", returncode=2)
        if warned:
            raise CommandError(f"wallet(s) WARN: {', '.join(warned)}", returncode=1)
