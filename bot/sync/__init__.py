"""The sync engine: one reconcile engine fed by webhooks and the periodic refresh, through the durable role queue."""
