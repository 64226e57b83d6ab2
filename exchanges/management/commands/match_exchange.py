"""manage.py match_exchange ID [--dry-run]."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from exchanges.exceptions import ExchangesError
from exchanges.services.matching import match_exchange


class Command(BaseCommand):
    help = (
        "Draw names for a draft or registration_open exchange: notify each giver, plan"
        " reminders. --dry-run checks that a draw exists and changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("exchange_id", type=int)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, exchange_id: int, dry_run: bool, **options: Any) -> None:
        try:
            result = match_exchange(exchange_id=exchange_id, dry_run=dry_run)
        except ExchangesError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(f"exchange {exchange_id}: {result}")
