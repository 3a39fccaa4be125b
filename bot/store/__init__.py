"""The one store: SQLite (or PostgreSQL, with DATABASE_URL) behind the `Store` facade, migrations by version per
engine, the durable queues and bulk writes."""

from bot.store.facade import CREATOR_SUBJECT, LAST_REFRESH, WEBHOOK_LAST_SEEN, Store, patron_subject
from bot.store.links import Link

__all__ = ["CREATOR_SUBJECT", "LAST_REFRESH", "WEBHOOK_LAST_SEEN", "Link", "Store", "patron_subject"]
