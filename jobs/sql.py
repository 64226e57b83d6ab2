"""Hand-written SQL of the jobs core, each statement named and described once."""

#: Take the lease when free, expired, already ours (re-entrant), or when its holder's
#: database session has ended (a killed process: taken over at once, no waiting for the
#: expiry). With %(bind_session)s the lease records this session; a session we cannot
#: see the start of (another role without pg_read_all_stats) counts as alive, so the
#: expiry stays the fallback, as for a host that vanished with its session still open.
#: Returns the owner, and whom the lease was taken from and why ('' when it was free).
ACQUIRE_LEASE = """
INSERT INTO jobs_lease
       (key, owner, acquired_at, expires_at, session_pid, session_started, taken_from,
        taken_reason)
SELECT %(key)s, %(owner)s, %(now)s, %(expires_at)s,
       CASE WHEN %(bind_session)s THEN pg_backend_pid() END,
       CASE WHEN %(bind_session)s THEN (SELECT backend_start FROM pg_stat_activity
                                         WHERE pid = pg_backend_pid()) END,
       '', ''
ON CONFLICT (key) DO UPDATE
   SET owner = EXCLUDED.owner,
       acquired_at = CASE WHEN jobs_lease.owner = EXCLUDED.owner
                          THEN jobs_lease.acquired_at ELSE EXCLUDED.acquired_at END,
       expires_at = EXCLUDED.expires_at,
       session_pid = EXCLUDED.session_pid,
       session_started = EXCLUDED.session_started,
       taken_from = CASE WHEN jobs_lease.owner = EXCLUDED.owner THEN '' ELSE jobs_lease.owner END,
       taken_reason = CASE WHEN jobs_lease.owner = EXCLUDED.owner THEN ''
                           WHEN jobs_lease.expires_at < %(now)s THEN 'lease expired'
                           ELSE 'database session ended' END
 WHERE jobs_lease.expires_at < %(now)s
    OR jobs_lease.owner = EXCLUDED.owner
    OR (jobs_lease.session_pid IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                         WHERE a.pid = jobs_lease.session_pid
                           AND (a.backend_start = jobs_lease.session_started
                                OR a.backend_start IS NULL)))
RETURNING owner, taken_from, taken_reason
"""

#: Before a session-bound acquire: read pg_stat_activity afresh (it is a snapshot per
#: transaction), and have the server notice within 1 s that this client died in the middle
#: of a statement (PostgreSQL 14+), so its session, and the lease, end with the client.
PREPARE_SESSION_LEASE = """
SELECT pg_stat_clear_snapshot(), set_config('client_connection_check_interval', '1000', false)
"""

#: Push the expiry out, only for the current owner of an unexpired or expired-but-untaken lease.
EXTEND_LEASE = """
UPDATE jobs_lease SET expires_at = %(expires_at)s
 WHERE key = %(key)s AND owner = %(owner)s
RETURNING key
"""

#: Drop the lease, only for its owner.
RELEASE_LEASE = "DELETE FROM jobs_lease WHERE key = %(key)s AND owner = %(owner)s RETURNING key"

#: Claim a queued run (or one whose worker is gone) for this worker; no row means not ours.
CLAIM_RUN = """
UPDATE jobs_jobrun
   SET status = 'running', started_at = %(now)s, heartbeat_at = %(now)s,
       host = %(host)s, pid = %(pid)s, task_id = COALESCE(task_id, %(task_id)s)
 WHERE id = %(id)s
   AND (status = 'queued' OR (status = 'running' AND heartbeat_at < %(stale_before)s))
RETURNING id
"""

#: The condition under which jobs.services.reaper may act on a run: queued past its cluster's
#: `retry` since it was due (or last requeued), or running with a heartbeat older than
#: STALE_RUN_SECONDS. Re-checked inside the UPDATE, so of two reapers only one wins a run.
_LOST_RUN = """
 WHERE id = %(id)s
   AND ((status = 'queued'
         AND COALESCE(requeued_at, scheduled_for, created_at) < %(queued_before)s)
        OR (status = 'running' AND heartbeat_at < %(stale_before)s))
"""

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

#: Claim a batch of due notifications; SKIP LOCKED so two delivery tasks never share a row.
#: `exclude`: rows this delivery run already tried (a failure waits for the next run).
CLAIM_NOTIFICATIONS = """
UPDATE jobs_notification
   SET status = 'sending', claimed_at = %(now)s, attempts = attempts + 1
 WHERE id IN (
       SELECT id FROM jobs_notification
        WHERE ((status = 'pending' AND next_attempt_at <= %(now)s)
               OR (status = 'sending' AND claimed_at < %(stale_before)s))
          AND (deliver_before IS NULL OR deliver_before > %(now)s)
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
"""

#: Delete one batch of rows older than a cutoff; repeated until it deletes nothing. The
#: DELETE repeats the condition: a row changed while it waited for the lock is re-checked.
#: (table and column are fixed identifiers chosen in code, never user input)
DELETE_BATCH = """
DELETE FROM {table} WHERE {column} < %(cutoff)s AND {pk} IN (
    SELECT {pk} FROM {table} WHERE {column} < %(cutoff)s LIMIT %(limit)s)
"""

#: Acknowledge (or drop) one queue row; a single autocommit statement (jobs.broker).
DELETE_QUEUE_TASK = "DELETE FROM django_q_ormq WHERE id = %(id)s"

#: Dequeue a batch of queue rows in one statement (jobs.broker).
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

#: Release a lease by hand (admin), only as it was judged: a holder that extended it since
#: is alive, and the row stays (jobs.services.lease_release).
RELEASE_JUDGED_LEASE = """
DELETE FROM jobs_lease WHERE key = %(key)s AND owner = %(owner)s AND expires_at = %(expires_at)s
RETURNING key
"""
