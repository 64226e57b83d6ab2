"""Job entry points of the loyalty app (thin: each calls one service)."""
