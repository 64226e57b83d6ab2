"""Admin of the loyalty app."""
