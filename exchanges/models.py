"""Models of the exchanges app."""
