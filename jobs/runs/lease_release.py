"""Releasing a lease by hand, only when its holder is gone (a live one would let a second
copy of the work start); the DELETE re-checks the rule, for a holder alive again meanwhile."""

from dataclasses import dataclass

from django.utils import timezone

from jobs import sql
from jobs.models import Lease
from jobs.runs import lifecycle


@dataclass(frozen=True)
class Verdict:
    #: True when a live holder keeps the lease (release refused).
    alive: bool
    #: What was found, for the operator: "run #12 running, heartbeat 4 s ago".
    detail: str


def judge(lease: Lease) -> Verdict:
    info = lifecycle.describe_holder(lease.key) or {"owner": lease.owner}
    if "run_id" in info:
        detail = f"run #{info['run_id']} is {info['status']}"
        if info.get("heartbeat_age_seconds") is not None:
            detail += f", heartbeat {info['heartbeat_age_seconds']:.0f} s ago"
    elif lease.run_id is not None:
        detail = f"run #{lease.run_id} is gone"
    elif lease.expires_at is not None and lease.expires_at < timezone.now():
        detail = f"expired {int((timezone.now() - lease.expires_at).total_seconds())} s ago"
    else:
        detail = f"held by {lease.owner} until {lease.expires_at:%H:%M:%S} UTC"
    return Verdict(lifecycle.lease_held(lease.key), detail)


def release_dead_leases(leases: list[Lease]) -> tuple[list[str], list[str]]:
    """Release the leases whose holder is gone: (released keys, refused "key: why" lines)."""
    released, refused = [], []
    for lease in leases:
        verdict = judge(lease)
        if verdict.alive:
            refused.append(f"{lease.key}: {verdict.detail}")
            continue
        params = {"key": lease.key, "owner": lease.owner, "now": timezone.now()}
        if sql.fetch(sql.RELEASE_DEAD_LEASE, params):
            released.append(lease.key)
        else:
            refused.append(f"{lease.key}: changed meanwhile (its holder is alive again)")
    return released, refused
