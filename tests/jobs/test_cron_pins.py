"""Every registered job and its schedule, pinned in one list.

A schedule is a code change (DESIGN: "editing a schedule is a code change"); this list
makes it a reviewed one: a job added, removed or moved to another time fails here until
the list says so. Crons are UTC. The test-only jobs (`tests.*`) are left out.
"""

from jobs.registry import all_jobs

#: name -> cron (None: on demand, queued by an operator, a command or a chain).
PINNED_CRONS = {
    "bibliotheca.apply_bibliographic": None,
    "bibliotheca.import_purchase_records_by_collection": None,
    "bibliotheca.import_purchase_records_for_all_collections": "0 4 * * *",
    "commerce.cleanup_expired_carts": "0 2 * * *",
    "commerce.cleanup_expired_tokens": "0 3 * * *",
    "commerce.cleanup_old_audit_logs": None,  # not scheduled by default; JOBS_SCHEDULES turns it on
    "commerce.process_due_subscriptions": "0 0 * * *",
    "commerce.process_webhook_event": None,
    "commerce.send_subscription_renewal_reminders": "0 0 * * *",
    "exchanges.auto_complete": "0 0 * * *",
    "exchanges.cleanup_rate_limits": "0 4 * * *",
    "exchanges.cleanup_sessions": "0 3 * * *",
    "exchanges.cleanup_tokens": "0 * * * *",
    "exchanges.match_exchange": None,
    "exchanges.purge_completed": "0 2 * * *",
    "exchanges.send_due_reminders": "* * * * *",
    "jobs.deliver_notifications": "* * * * *",
    "jobs.scan_alerts": "* * * * *",
    "devkit.demo_job": None,
    "jobs.prune_history": "30 3 * * *",
    "jobs.reap_lost_runs": "*/5 * * * *",
    "loyalty.expire_points": "0 2 * * *",
    "loyalty.push_wallet_changes": "* * * * *",
    "loyalty.sync_wallet_passes": "0 * * * *",
}


def test_every_registered_job__has_the_pinned_schedule():
    registered = {spec.name: spec.cron for spec in all_jobs() if not spec.name.startswith("tests.")}

    assert registered == PINNED_CRONS
