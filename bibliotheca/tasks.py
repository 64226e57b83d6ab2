"""Job entry points of the bibliotheca app (thin: each calls one service)."""
