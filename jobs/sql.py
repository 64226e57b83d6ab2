"""Hand-written SQL of the jobs core, each statement named and described once."""

from typing import Any

from django.db import connections


def fetch(statement: str, params: dict[str, Any], *, using: str = "default") -> list[tuple]:
    """Run one statement: its rows (none if it returns none)."""
    with connections[using].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


#: The one liveness rule: a run is alive while a database session holds its advisory lock
#: (keyed by the run id, `{run}`), which dies with the session. pg_locks spans databases.
RUN_ALIVE = """EXISTS (
    SELECT 1 FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = (({run}) >> 32)::oid AND l.objid = (({run}) & 4294967295)::oid)"""

#: A lease is held while its run is queued (a chain between hops, a retry waiting) or alive;
#: a lease of no run (an operator's hold) until its expiry. `{lease}`: the lease row's alias.
LEASE_HELD = (
    """(({lease}.run_id IS NULL AND {lease}.expires_at >= %(now)s)
    OR EXISTS (SELECT 1 FROM jobs_jobrun h
                WHERE h.id = {lease}.run_id
                  AND (h.status = 'queued' OR (h.status = 'running' AND """
    + RUN_ALIVE.format(run="h.id")
    + """))))"""
)

#: The keys of every held lease (or only %(key)s's, when not null), in one statement.
HELD_LEASE_KEYS = (
    "SELECT l.key FROM jobs_lease l WHERE (%(key)s::text IS NULL OR l.key = %(key)s) AND "
    + LEASE_HELD.format(lease="l")
    + " ORDER BY l.key"
)

#: Take the run's advisory lock; false when another live session holds it. The same
#: statement has the server notice within 1 s that this client died mid-statement
#: (PostgreSQL 14+), so the session, and with it the run's lock, end with the client.
LOCK_RUN = """
SELECT pg_try_advisory_lock(%(id)s),
       set_config('client_connection_check_interval', '1000', false)
"""

#: Let go of the run's advisory lock (the session stays with the worker for its next task).
UNLOCK_RUN = "SELECT pg_advisory_unlock(%(id)s)"

#: Claim a run whose advisory lock we hold: queued, or running for a worker that is gone
#: (holding the lock proves its session ended). No row: finished or not ours.
CLAIM_RUN = """
UPDATE jobs_jobrun
   SET status = 'running', started_at = %(now)s, heartbeat_at = %(now)s,
       host = %(host)s, pid = %(pid)s, task_id = COALESCE(task_id, %(task_id)s)
 WHERE id = %(id)s AND status IN ('queued', 'running')
RETURNING id
"""

#: Record `failed` the running runs among %(ids)s (and of job %(job)s) that are not alive:
#: their worker died. %(keep)s is the run that found them.
FAIL_LOST_RUNS = (
    """
UPDATE jobs_jobrun
   SET status = 'failed', finished_at = %(now)s, error = %(reason)s
 WHERE (id = ANY(%(ids)s) OR job = %(job)s) AND id <> %(keep)s AND status = 'running'
   AND NOT """
    + RUN_ALIVE.format(run="id")
    + "\nRETURNING id"
)

#: Running runs that are not alive (their worker died), oldest heartbeat first.
LOST_RUNS = (
    """
SELECT id FROM jobs_jobrun
 WHERE status = 'running' AND NOT """
    + RUN_ALIVE.format(run="id")
    + """
 ORDER BY heartbeat_at, id
 LIMIT %(limit)s
"""
)

#: Whether lease row {lease} is already the acquirer's: bound to its run (its own, or handed
#: to it), or an operator's hold of the same name. A run that handed its lease on is no
#: longer its holder, whatever the owner column still says.
_LEASE_OURS = """({lease}.run_id IS NOT DISTINCT FROM %(run_id)s::bigint
     AND ({lease}.run_id IS NOT NULL OR {lease}.owner = %(owner)s))"""

#: Take the lease for `owner` (and `run_id`) when it is free, ours (re-entrant, or handed to
#: this run), or its holder is gone: whom it was taken from, why, and whether it was ours.
ACQUIRE_LEASE = (
    """
WITH previous AS (SELECT owner, run_id FROM jobs_lease WHERE key = %(key)s)
INSERT INTO jobs_lease AS l (key, owner, run_id, acquired_at, expires_at, taken_from,
                             taken_reason)
VALUES (%(key)s, %(owner)s, %(run_id)s, %(now)s, %(expires_at)s, '', '')
ON CONFLICT (key) DO UPDATE
   SET owner = EXCLUDED.owner,
       run_id = EXCLUDED.run_id,
       acquired_at = CASE WHEN """
    + _LEASE_OURS.format(lease="l")
    + """ THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
       expires_at = EXCLUDED.expires_at,
       taken_from = CASE WHEN """
    + _LEASE_OURS.format(lease="l")
    + """ THEN '' ELSE l.owner END,
       taken_reason = CASE WHEN """
    + _LEASE_OURS.format(lease="l")
    + """ THEN ''
                           WHEN l.run_id IS NULL THEN 'lease expired'
                           WHEN EXISTS (SELECT 1 FROM jobs_jobrun h
                                         WHERE h.id = l.run_id AND h.status = 'running')
                           THEN 'database session ended'
                           ELSE 'run ended' END
 WHERE """
    + _LEASE_OURS.format(lease="l")
    + " OR NOT "
    + LEASE_HELD.format(lease="l")
    + """
RETURNING owner, taken_from, taken_reason,
          (SELECT run_id FROM previous WHERE NOT """
    + _LEASE_OURS.format(lease="previous")
    + """) AS taken_run,
          EXISTS (SELECT 1 FROM previous WHERE """
    + _LEASE_OURS.format(lease="previous")
    + """) AS kept
"""
)

#: Release a lease by hand (admin), only when nobody holds it by the liveness rule.
RELEASE_DEAD_LEASE = (
    """
DELETE FROM jobs_lease l WHERE key = %(key)s AND owner = %(owner)s AND NOT """
    + LEASE_HELD.format(lease="l")
    + "\nRETURNING key"
)

#: The condition under which jobs.queue.reaper may act on a run: queued past its cluster's
#: `retry` since it was due (or last requeued), or running and not alive. Re-checked inside
#: the UPDATE, so of two reapers only one wins a run.
_LOST_RUN = (
    """
 WHERE id = %(id)s
   AND ((status = 'queued'
         AND COALESCE(requeued_at, scheduled_for, created_at) < %(queued_before)s)
        OR (status = 'running' AND NOT """
    + RUN_ALIVE.format(run="id")
    + """))
"""
)

#: Hand a lost run back to the queue: it becomes `queued` again, with why and how often.
REQUEUE_LOST_RUN = (
    """
UPDATE jobs_jobrun
   SET status = 'queued', requeued_at = %(now)s, requeue_count = requeue_count + 1,
       requeue_reason = %(reason)s
"""
    + _LOST_RUN
    + "RETURNING id"
)

#: Give up on a run lost too often (a task that kills its worker each time).
GIVE_UP_LOST_RUN = (
    """
UPDATE jobs_jobrun
   SET status = 'failed', finished_at = %(now)s, error = %(reason)s
"""
    + _LOST_RUN
    + "RETURNING id"
)

#: The queues with a qcluster consuming them, and how many of its sessions are connected:
#: a cluster names its sessions after its queue (settings.QCLUSTER_SESSION_PREFIX).
QUEUE_CONSUMERS = """
SELECT substr(application_name, length(%(prefix)s) + 1), count(*)
  FROM pg_stat_activity
 WHERE datname = current_database() AND starts_with(application_name, %(prefix)s)
 GROUP BY 1
"""

#: Claim a batch of due notifications; SKIP LOCKED so two delivery tasks never share a row.
#: `exclude`: rows this delivery run already tried (a failure waits for the next run);
#: `template` and `due_before` narrow it (the web process's fallback for stranded alerts).
CLAIM_NOTIFICATIONS = """
UPDATE jobs_notification
   SET status = 'sending', claimed_at = %(now)s, attempts = attempts + 1
 WHERE id IN (
       SELECT id FROM jobs_notification
        WHERE ((status = 'pending' AND next_attempt_at <= %(due_before)s)
               OR (status = 'sending' AND claimed_at < %(stale_before)s
                   AND attempts < max_attempts))
          AND (deliver_before IS NULL OR deliver_before > %(now)s)
          AND (%(template)s::text IS NULL OR template = %(template)s)
          AND NOT (id = ANY(%(exclude)s))
        ORDER BY next_attempt_at, id
        LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING id
"""

#: Waiting rows whose deadline passed are never sent: dead, "too late" (the claim skips
#: them too, so one that passes its deadline between the two is not sent either).
EXPIRE_LATE_NOTIFICATIONS = """
UPDATE jobs_notification
   SET status = 'dead', dead_reason = 'too late',
       last_error = 'too late: not delivered before ' || to_char(deliver_before AT TIME ZONE 'UTC',
                                                                 'YYYY-MM-DD HH24:MI "UTC"')
 WHERE deliver_before <= %(now)s
   AND (status = 'pending' OR (status = 'sending' AND claimed_at < %(stale_before)s))
RETURNING id
"""

#: A row left `sending` by a worker that died on its last attempt may have gone out: it is
#: not claimed again (a send that kills its worker would go out every timeout) but dead.
EXPIRE_LOST_NOTIFICATIONS = """
UPDATE jobs_notification
   SET status = 'dead', dead_reason = 'failed',
       last_error = 'worker lost while sending attempt ' || attempts || ' of ' || max_attempts
                    || ': it may have gone out; requeue it to send it again'
 WHERE status = 'sending' AND claimed_at < %(stale_before)s AND attempts >= max_attempts
RETURNING id
"""

#: Delete one batch of rows older than a cutoff (fixed identifiers chosen in code); the DELETE
#: repeats the condition, so a row changed while it waited for the lock is re-checked.
DELETE_BATCH = """
DELETE FROM {table} WHERE {column} < %(cutoff)s AND {pk} IN (
    SELECT {pk} FROM {table} WHERE {column} < %(cutoff)s LIMIT %(limit)s)
RETURNING 1
"""

#: Delete one batch of finished runs past %(cutoff)s, keeping those an open alert names (what
#: staff still have to read); the links other rows keep to a deleted run (a later retry's
#: parent, a resolved alert's runs) are cleared in the same statement (the foreign keys
#: have no ON DELETE action, and a dangling one would fail every prune from then on).
DELETE_RUN_BATCH = """
WITH doomed AS (
    SELECT r.id FROM jobs_jobrun r
     WHERE r.finished_at < %(cutoff)s
       AND NOT EXISTS (SELECT 1 FROM jobs_alert a
                        WHERE a.resolved_at IS NULL AND r.id IN (a.first_run_id, a.last_run_id))
     LIMIT %(limit)s
), orphaned AS (
    UPDATE jobs_jobrun c SET parent_id = NULL
     WHERE c.parent_id IN (SELECT id FROM doomed) AND c.id NOT IN (SELECT id FROM doomed)
), unlinked AS (
    UPDATE jobs_alert a
       SET first_run_id = CASE WHEN a.first_run_id IN (SELECT id FROM doomed) THEN NULL
                               ELSE a.first_run_id END,
           last_run_id = CASE WHEN a.last_run_id IN (SELECT id FROM doomed) THEN NULL
                              ELSE a.last_run_id END,
           resolved_by_id = CASE WHEN a.resolved_by_id IN (SELECT id FROM doomed) THEN NULL
                                 ELSE a.resolved_by_id END
     WHERE a.first_run_id IN (SELECT id FROM doomed) OR a.last_run_id IN (SELECT id FROM doomed)
        OR a.resolved_by_id IN (SELECT id FROM doomed)
)
DELETE FROM jobs_jobrun WHERE id IN (SELECT id FROM doomed) RETURNING 1
"""

#: Acknowledge (or drop) one queue row; a single autocommit statement (jobs.queue.broker).
DELETE_QUEUE_TASK = "DELETE FROM django_q_ormq WHERE id = %(id)s"

#: Dequeue a batch of queue rows in one statement (jobs.queue.broker).
DEQUEUE_BATCH = """
UPDATE django_q_ormq SET lock = %(lock_until)s
 WHERE id IN (
       SELECT id FROM django_q_ormq
        WHERE key = %(key)s AND lock < %(now)s
        ORDER BY id
        LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""

#: The latest %(limit)s runs of each named job, newest first; one index range scan per job
#: (jobrun_job_created) instead of a window over the whole history.
RECENT_RUNS_PER_JOB = """
SELECT r.id, r.job, r.status, r.duration_seconds, r.created_at
  FROM unnest(%(jobs)s::text[]) AS j(name)
 CROSS JOIN LATERAL (
       SELECT id, job, status, duration_seconds, created_at
         FROM jobs_jobrun
        WHERE job = j.name
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
 ) AS r
"""

#: The session's staging table of outbox rows (COPY has no ON CONFLICT); empty at every commit.
CREATE_OUTBOX_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS jobs_outbox_stage
       (channel text, recipient text, template text, subject text, body text, dedup_key text,
        deliver_before timestamptz)
       ON COMMIT DELETE ROWS
"""

#: What `COPY_OUTBOX_STAGE` loads (psycopg's `cursor.copy`, one row per notification).
COPY_OUTBOX_STAGE = (
    "COPY jobs_outbox_stage (channel, recipient, template, subject, body, dedup_key,"
    " deliver_before) FROM STDIN"
)

#: Move the staged rows into the outbox in one statement; a known dedup key is skipped.
QUEUE_STAGED_NOTIFICATIONS = """
WITH staged AS (DELETE FROM jobs_outbox_stage RETURNING *)
INSERT INTO jobs_notification
       (channel, recipient, template, subject, body, dedup_key, status, attempts,
        max_attempts, next_attempt_at, last_error, created_at, requeued_by, deliver_before,
        dead_reason)
SELECT channel, recipient, template, subject, body, dedup_key, 'pending', 0,
       %(max_attempts)s, %(now)s, '', %(now)s, '', deliver_before, ''
  FROM staged
ON CONFLICT (dedup_key) DO NOTHING
"""

#: Count finished runs that need telling into one open alert per (job, kind); a failed run
#: that queued a retry (or was taken over) is not a failure for good. `tell`: a new alert, or
#: one last told before %(repeat_before)s. SKIP LOCKED and (job, kind) order: concurrent scans
#: neither count a run twice nor deadlock.
RECORD_RUN_ALERTS = """
WITH candidates AS (
    SELECT id FROM jobs_jobrun
     WHERE alerted_at IS NULL
       AND finished_at >= %(since)s
       AND (status IN ('failed', 'timed_out', 'missed') OR needs_attention)
       AND NOT (status IN ('failed', 'timed_out')
                AND (result -> 'retry_run_id' IS NOT NULL OR result -> 'taken_over' IS NOT NULL))
       FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE jobs_jobrun r
       SET alerted_at = %(now)s
      FROM candidates c
     WHERE r.id = c.id
 RETURNING r.id, r.job, r.finished_at,
           CASE WHEN r.status IN ('failed', 'timed_out') THEN 'failed'
                WHEN r.status = 'missed' THEN 'missed'
                ELSE 'attention' END AS kind,
           left(CASE WHEN r.status IN ('failed', 'timed_out') THEN split_part(r.error, E'\\n', 1)
                     WHEN r.status = 'missed' THEN 'slot started '
                          || coalesce(r.result ->> 'late_seconds', '?') || ' s late (grace '
                          || coalesce(r.result ->> 'grace_seconds', '?') || ' s): not run'
                     ELSE r.attention_reason END, 500) AS reason
), grouped AS (
    SELECT job, kind, count(*) AS n, min(id) AS first_id, max(id) AS last_id,
           max(finished_at) AS last_at, (array_agg(reason ORDER BY id))[1] AS reason
      FROM marked
     GROUP BY job, kind
)
INSERT INTO jobs_alert (job, kind, count, reason, first_run_id, last_run_id, opened_at,
                        last_seen_at, notified_at)
SELECT job, kind, n, coalesce(reason, ''), first_id, last_id, %(now)s, last_at, %(now)s
  FROM grouped
 ORDER BY job, kind
ON CONFLICT (job, kind) WHERE resolved_at IS NULL
DO UPDATE SET count = jobs_alert.count + EXCLUDED.count,
              last_run_id = EXCLUDED.last_run_id,
              last_seen_at = GREATEST(jobs_alert.last_seen_at, EXCLUDED.last_seen_at),
              notified_at = CASE WHEN jobs_alert.notified_at < %(repeat_before)s THEN %(now)s
                                 ELSE jobs_alert.notified_at END
RETURNING id, (xmax = 0) AS opened, notified_at = %(now)s AS tell
"""

#: The watchdog: a cron Schedule of ours past its slot by more than the grace has not
#: started (its cluster is down). Each such slot is one problem: it opens a `missed` alert,
#: or counts once into the open one (told again, like any open alert, once
#: %(repeat_before)s passed since staff were told: a cluster still down is never quiet).
#: A resolved alert that saw the slot keeps it from opening another. The UPDATE re-checks
#: its condition on a row a concurrent scan just counted, so a slot is never counted twice.
OPEN_MISSED_SLOT_ALERTS = """
WITH due AS (
    SELECT DISTINCT ON (s.name) s.name, s.next_run, s.cluster
      FROM django_q_schedule s
     WHERE s.func = %(func)s
       AND s.repeats <> 0
       AND s.next_run < %(overdue_before)s
     ORDER BY s.name, s.next_run
), counted AS (
    UPDATE jobs_alert a
       SET count = a.count + 1, last_seen_at = %(now)s,
           notified_at = CASE WHEN a.notified_at < %(repeat_before)s THEN %(now)s
                              ELSE a.notified_at END
      FROM due
     WHERE a.job = due.name AND a.kind = 'missed' AND a.resolved_at IS NULL
       AND (a.last_seen_at < due.next_run OR a.notified_at < %(repeat_before)s)
 RETURNING a.id, false AS opened, a.notified_at = %(now)s AS tell
), opened AS (
    INSERT INTO jobs_alert (job, kind, count, reason, opened_at, last_seen_at, notified_at)
    SELECT due.name, 'missed', 1,
           left('the slot due ' || to_char(due.next_run AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
                || ' UTC has not started (is the ' || coalesce(due.cluster, 'default')
                || ' cluster running?)', 500),
           %(now)s, %(now)s, %(now)s
      FROM due
     WHERE NOT EXISTS (SELECT 1 FROM jobs_alert a
                        WHERE a.job = due.name AND a.kind = 'missed'
                          AND (a.resolved_at IS NULL OR a.last_seen_at >= due.next_run))
    ON CONFLICT (job, kind) WHERE resolved_at IS NULL DO NOTHING
    RETURNING id, true AS opened, true AS tell
)
SELECT * FROM counted UNION ALL SELECT * FROM opened
"""

#: Resolve every open alert whose job succeeded (unflagged) after its latest problem, by the
#: first such run; an alert another scan holds is left to it.
RESOLVE_ALERTS = """
WITH fixed AS (
    SELECT a.id AS alert_id,
           (SELECT r.id FROM jobs_jobrun r
             WHERE r.job = a.job AND r.status = 'succeeded' AND NOT r.needs_attention
               AND r.finished_at > a.last_seen_at
             ORDER BY r.finished_at, r.id
             LIMIT 1) AS run_id
      FROM jobs_alert a
     WHERE a.resolved_at IS NULL
     ORDER BY a.id
       FOR UPDATE OF a SKIP LOCKED
)
UPDATE jobs_alert a
   SET resolved_at = %(now)s, resolved_by_id = fixed.run_id
  FROM fixed
 WHERE a.id = fixed.alert_id AND fixed.run_id IS NOT NULL
RETURNING a.id
"""
