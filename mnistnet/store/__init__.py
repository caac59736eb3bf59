"""The database (SQLAlchemy): schema and upgrades (schema), samples, models, drawings and
current models (db), runs and their queue (runs).

Imported by the CLI commands and the app that need it, never by `import mnistnet`.
"""

from .db import SOURCES, default_url
from .runs import ACTIVE, CLI_OWNER, RUN_STATUSES, NotAllowed, Store, interrupted_message, scheduler_answers
from .schema import EARLIER, SCHEMA_VERSION, StoreError

__all__ = ["Store", "StoreError", "NotAllowed", "SOURCES", "SCHEMA_VERSION", "RUN_STATUSES", "ACTIVE",
           "CLI_OWNER", "EARLIER", "default_url", "interrupted_message", "scheduler_answers"]
