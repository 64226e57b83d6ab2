"""Who an audit row names: the job run that made the change, or the caller."""

from jobs.runs.current import current_run


def job_actor(default: str = "commerce") -> str:
    """`<job> run #<id> (<who triggered it>)` inside a job, else `default`."""
    run = current_run()
    if run is None:
        return default[:150]
    return f"{run.job} run #{run.pk} ({run.triggered_by or run.trigger})"[:150]
