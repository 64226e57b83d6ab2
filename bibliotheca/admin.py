"""Admin of the bibliotheca app."""
