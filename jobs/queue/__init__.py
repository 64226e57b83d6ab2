"""django-q2's side: how a run reaches a worker, and again when its task was lost."""
