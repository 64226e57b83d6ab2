"""A run's life: created, claimed, locked, finished, found lost; what a running job knows."""
