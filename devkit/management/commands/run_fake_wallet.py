"""manage.py run_fake_wallet: serve the fake Google Wallet and APNs with injected faults."""

import tempfile
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from devkit.devservers import non_negative_float
from devkit.wallets.apns import ApnsFaults
from devkit.wallets.google import Faults
from devkit.wallets.keys import generate_keys
from devkit.wallets.kit import WalletFakes


class Command(BaseCommand):
    help = (
        "Serve local fakes of Google Wallet (token endpoint + walletobjects) and APNs (HTTP/2, "
        "TLS) for manual runs and demos, with throwaway keys; prints the LOYALTY_* environment "
        "that points the real clients at them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--latency-ms", type=non_negative_float, default=0.0)
        parser.add_argument("--failure-rate", type=float, default=0.0, help="0..1, answered 503")
        parser.add_argument("--timeout-rate", type=float, default=0.0, help="0..1, hang")
        parser.add_argument("--hang-seconds", type=non_negative_float, default=10.0)
        parser.add_argument("--keys-dir", help="where to write the throwaway keys (default: temp)")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("failure_rate", "timeout_rate"):
            if not 0 <= options[name] <= 1:
                flag = "--" + name.replace("_", "-")
                raise CommandError(f"{flag} {options[name]} is not in 0..1", returncode=2)
        latency = options["latency_ms"] / 1000
        faults = Faults(
            latency_seconds=latency,
            failure_rate=options["failure_rate"],
            timeout_rate=options["timeout_rate"],
            hang_seconds=options["hang_seconds"],
        )
        directory = Path(options["keys_dir"] or tempfile.mkdtemp(prefix="fake-wallet-"))
        fakes = WalletFakes(
            generate_keys(directory),
            google_faults=faults,
            apns_faults=ApnsFaults(latency_seconds=latency, failure_rate=options["failure_rate"]),
        ).start()
        for name, value in fakes.settings().items():
            self.stdout.write(f"export {name}={value}")
        self.stdout.write(
            f"fake Google Wallet {fakes.google.base_url}, fake APNs {fakes.apns.base_url}"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            fakes.stop()
