"""Admin of the exchanges app."""
