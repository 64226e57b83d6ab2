"""Messages to people: queued with the change that causes them, delivered once; alerts."""
