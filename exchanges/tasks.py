"""Job entry points of the exchanges app (thin: each calls one service)."""
