"""Commands that run a job: the shared base, and the types of options that are not arguments."""
