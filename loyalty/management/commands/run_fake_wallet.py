"""manage.py run_fake_wallet: serve the fake Google/Apple wallet with injected faults."""

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.cli_types import non_negative_float, port_number
from jobs.devservers import listen_problem
from loyalty.fake_wallet import FakeWallet, Faults


class Command(BaseCommand):
    help = (
        "Serve a local fake of both wallet APIs (for manual runs, demos, benchmarks). Point "
        "LOYALTY_GOOGLE_WALLET_URL and LOYALTY_APPLE_WALLET_URL at the printed URL."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=port_number, default=8765, help="0: any free port")
        parser.add_argument("--latency-ms", type=non_negative_float, default=0.0)
        parser.add_argument("--failure-rate", type=float, default=0.0, help="0..1, answered 503")
        parser.add_argument("--timeout-rate", type=float, default=0.0, help="0..1, hang")
        parser.add_argument("--hang-seconds", type=non_negative_float, default=10.0)

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("failure_rate", "timeout_rate"):
            if not 0 <= options[name] <= 1:
                flag = "--" + name.replace("_", "-")
                raise CommandError(f"{flag} {options[name]} is not in 0..1", returncode=2)
        faults = Faults(
            latency_seconds=options["latency_ms"] / 1000,
            failure_rate=options["failure_rate"],
            timeout_rate=options["timeout_rate"],
            hang_seconds=options["hang_seconds"],
        )
        try:
            wallet = FakeWallet(port=options["port"], faults=faults).start()
        except OSError as exc:
            raise CommandError(
                listen_problem(exc, host="127.0.0.1", port=options["port"])
            ) from None
        self.stdout.write(f"fake wallet on {wallet.base_url} with {faults}; Ctrl-C stops it")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            wallet.stop()
