"""Models of the bibliotheca app."""
