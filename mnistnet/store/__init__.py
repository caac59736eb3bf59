"""The database (SQLAlchemy): schema and upgrades (schema), samples, models, drawings and
current models (db), runs (runs) and their lifecycle (lifecycle: every status change).

Imported by the CLI commands and the app that need it, never by `import mnistnet`.
"""

from .db import SOURCES, default_url
from .lifecycle import HEARTBEAT_LIMIT_S, HEARTBEAT_S, TRAINING, interrupted_message
from .runs import ACTIVE, CLI_OWNER, RUN_STATUSES, NotAllowed, Store, runner_name, scheduler_answers
from .schema import EARLIER, SCHEMA_VERSION, StoreError

__all__ = ["Store", "StoreError", "NotAllowed", "SOURCES", "SCHEMA_VERSION", "RUN_STATUSES", "ACTIVE",
           "CLI_OWNER", "EARLIER", "HEARTBEAT_LIMIT_S", "HEARTBEAT_S", "TRAINING", "default_url",
           "interrupted_message", "runner_name", "scheduler_answers"]
