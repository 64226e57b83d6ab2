"""manage.py bibliotheca_simulator: a local cloudLibrary API for trying the importer by hand."""

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from devkit.bibliotheca_simulator import Catalogue, Fault
from devkit.bibliotheca_simulator.server import FAULT_KINDS, SimulatorServer, SimulatorState
from devkit.devservers import listen_problem, non_negative_int, port_number
from jobs.cli.types import ascii_digits

#: A century of purchase days is more than any test or demo needs.
MAX_DAYS = 36600


class Command(BaseCommand):
    help = (
        "Serve a deterministic Bibliotheca catalogue on 127.0.0.1:PORT until Ctrl-C; point a "
        "Collection's base URL at it (library id, account id and key as given here)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=port_number, required=True, help="0: any free port")
        parser.add_argument("--start-date", type=date.fromisoformat, default=date(2014, 1, 1))
        parser.add_argument("--days", type=non_negative_int, default=30, help="1 to 36600")
        parser.add_argument(
            "--records-per-day", type=non_negative_int, default=20, help="1 to 86400"
        )
        parser.add_argument("--no-001-every", type=non_negative_int, default=0)
        parser.add_argument("--two-001-every", type=non_negative_int, default=0)
        parser.add_argument(
            "--listing-delay-minutes",
            type=non_negative_int,
            default=0,
            help="list each purchase this long after it happened (late listings)",
        )
        parser.add_argument("--library-id", default="lib")
        parser.add_argument("--account-id", default="acct")
        parser.add_argument("--account-key", default="secret")
        parser.add_argument("--latency-ms", type=float, default=0.0, help="every answer waits")
        parser.add_argument(
            "--jitter-ms", type=float, default=0.0, help="give or take, per request"
        )
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="KIND[:ENDPOINT[:TIMES]]",
            help=f"inject a fault; KIND in {', '.join(FAULT_KINDS)}, ENDPOINT marc|items|any",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not 1 <= opts["days"] <= MAX_DAYS or not 1 <= opts["records_per_day"] <= 86400:
            raise CommandError(
                f"--days must be 1 to {MAX_DAYS} and --records-per-day 1 to 86400", returncode=2
            )
        if opts["start_date"] > date(9999, 1, 1) - timedelta(days=opts["days"]):
            raise CommandError("--start-date plus --days must stay before 9999", returncode=2)
        for name in ("latency_ms", "jitter_ms"):
            if not 0 <= opts[name] <= 60_000:  # also refuses nan
                flag = "--" + name.replace("_", "-")
                raise CommandError(f"{flag} must be between 0 and 60000", returncode=2)
        try:
            faults = [_parse_fault(spec) for spec in opts["fault"]]
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        catalogue = Catalogue(
            start_date=opts["start_date"],
            days=opts["days"],
            records_per_day=opts["records_per_day"],
            no_001_every=opts["no_001_every"],
            two_001_every=opts["two_001_every"],
            listing_delay=timedelta(minutes=opts["listing_delay_minutes"]),
        )
        state = SimulatorState(
            catalogue=catalogue,
            library_id=opts["library_id"],
            account_id=opts["account_id"],
            account_key=opts["account_key"],
            faults=faults,
            latency_ms=opts["latency_ms"],
            jitter_ms=opts["jitter_ms"],
        )
        try:
            server = SimulatorServer(("127.0.0.1", opts["port"]), state)
        except OSError as exc:
            raise CommandError(listen_problem(exc, host="127.0.0.1", port=opts["port"])) from None
        self.stdout.write(
            f"Bibliotheca simulator on {server.base_url} (library {opts['library_id']}, "
            f"{catalogue.total_records} records over {catalogue.days} days); Ctrl-C stops it"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _parse_fault(spec: str) -> Fault:
    kind, endpoint, times = ([*spec.split(":"), "any", "1"])[:3]
    if not ascii_digits(times):
        raise ValueError(f"bad fault {spec!r}: TIMES must be a number")
    return Fault(kind=kind, endpoint=endpoint, times=int(times))
