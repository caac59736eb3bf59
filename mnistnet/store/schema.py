"""The store's tables, its schema version and the upgrades of older stores.

Imports SQLAlchemy only. Version 3 gives every visitor-made row an owner (an opaque id: a hash
of the browser's key, or the signed-in account), queues runs (queued -> running -> finished /
stopped / failed / interrupted) with their live progress and a stop flag, keeps each visitor's
current model, and groups runs into sweeps. `migrate` creates or upgrades a store in one
transaction, holding a lock first, so two processes opening an old store at once upgrade it
once. Version 4 keeps snapshots of the weights through training, one row each, with the model
they belong to (so they follow a copy of it and go when it goes). Version 5 gives each run a
heartbeat (written by the process training it: mnistnet.store.lifecycle) and the statuses
stopping and cancelled.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..dburl import public_url

SCHEMA_VERSION = 5
EARLIER = "earlier"  # the owner of rows made before owners existed (upgrade 2 -> 3)

metadata = sa.MetaData()
meta = sa.Table("meta", metadata, sa.Column("key", sa.String(64), primary_key=True),
                sa.Column("value", sa.Text, nullable=False))
samples = sa.Table(
    "samples", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset", sa.String(32), nullable=False),  # "mnist" or "user"
    sa.Column("split", sa.String(16), nullable=False),  # train, val, test (mnist) or user
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("pixels", sa.LargeBinary, nullable=False),  # 784 bytes: (28, 28) uint8 row-major
    sa.Column("source", sa.String(16), nullable=False),  # mnist, upload or drawing
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("owner", sa.String(128)),  # schema 3; None for MNIST
    sa.Index("ix_samples_split", "dataset", "split"),
)
sweeps = sa.Table(
    "sweeps", metadata,  # schema 3: a group of runs
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # JSON: what was searched
    sa.Column("created_at", sa.Float, nullable=False),
    sqlite_autoincrement=True,
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("layer_sizes", sa.Text, nullable=False),  # JSON list
    sa.Column("config", sa.Text, nullable=False),  # JSON TrainConfig.to_dict()
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # cli, app, default, finetune, sweep, upload
    sa.Column("started_at", sa.Float, nullable=False),  # submitted (queued) at
    sa.Column("ended_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String(255)),  # schema 2: a CLI run's host and pid, to tell a crash from a live run
    sa.Column("pid", sa.Integer),  # schema 2
    sa.Column("owner", sa.String(128)),  # schema 3 (from here down)
    sa.Column("name", sa.String(255)),  # the owner's name for it
    sa.Column("running_at", sa.Float),  # training began
    sa.Column("stop_requested_at", sa.Float),
    sa.Column("progress", sa.Text),  # JSON: the last Progress (samples seen, running loss, ...)
    sa.Column("losses", sa.Text),  # JSON: [[samples seen, mean loss since the last point], ...]
    sa.Column("scheduler", sa.String(255)),  # the Dask scheduler it was submitted to
    sa.Column("worker", sa.String(255)),  # the worker's address, once running
    sa.Column("base_model_id", sa.Integer),  # fine-tuning: the model it starts from
    sa.Column("spec", sa.Text),  # JSON: what else the task needs (fine-tuning's digits)
    sa.Column("sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="SET NULL")),
    sa.Column("heartbeat_at", sa.Float),  # schema 5: the runner's last sign of life
    sa.Index("ix_runs_status", "status"),
    sqlite_autoincrement=True,  # a deleted run's id is never given to another (links name runs by id)
)
epochs = sa.Table(
    "epochs", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("test_accuracy", sa.Float, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),  # JSON: the History epoch record
)
models = sa.Table(
    "models", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("npz", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("owner", sa.String(128)),  # schema 3
    sa.Column("epoch", sa.Integer),  # schema 3: the epochs it has trained (None: unknown)
    sqlite_autoincrement=True,  # never an id of a deleted model: a cache keyed by id stays right
)
snapshots = sa.Table(
    "snapshots", metadata,  # schema 4: the weights through training (mnistnet.snapshots), one row each
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Float, primary_key=True),  # 0.0, the early fraction, 1.0, 2.0, ...
    sa.Column("data", sa.LargeBinary, nullable=False),  # snapshots.encode([that one snapshot])
)
drawings = sa.Table(
    "drawings", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("pixels", sa.LargeBinary, nullable=False),  # 784 bytes
    sa.Column("prediction", sa.Integer, nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),  # JSON list of 10
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="SET NULL")),
    sa.Column("label", sa.Integer),  # the digit the user says it is
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("owner", sa.String(128)),  # schema 3
)
current = sa.Table(
    "current", metadata,  # schema 3: each visitor's current model
    sa.Column("owner", sa.String(128), primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # where it came from, in words
    sa.Column("test_accuracy", sa.Float),  # as measured when it became current (None: unknown)
    sa.Column("updated_at", sa.Float, nullable=False),
)


class StoreError(RuntimeError):
    """The store cannot be used as it is; the message says why and what to do."""


def _upgrade_1_to_2(c) -> None:
    c.execute(sa.text("ALTER TABLE runs ADD COLUMN host VARCHAR(255)"))
    c.execute(sa.text("ALTER TABLE runs ADD COLUMN pid INTEGER"))


_V3_COLUMNS = {
    "runs": ["owner VARCHAR(128)", "name VARCHAR(255)", "running_at FLOAT", "stop_requested_at FLOAT",
             "progress TEXT", "losses TEXT", "scheduler VARCHAR(255)", "worker VARCHAR(255)",
             "base_model_id INTEGER", "spec TEXT", "sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL"],
    "samples": ["owner VARCHAR(128)"], "models": ["owner VARCHAR(128)", "epoch INTEGER"],
    "drawings": ["owner VARCHAR(128)"],
}


def _upgrade_2_to_3(c) -> None:
    sweeps.create(c)
    current.create(c)
    for table, columns in _V3_COLUMNS.items():
        for col in columns:
            c.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {col}"))
    c.execute(runs.update().values(owner=EARLIER))
    c.execute(models.update().values(owner=EARLIER))
    c.execute(drawings.update().values(owner=EARLIER))
    c.execute(samples.update().where(samples.c.dataset == "user").values(owner=EARLIER))
    c.execute(sa.text("CREATE INDEX ix_runs_status ON runs (status)"))  # not sa.Index: it would join `runs`


def _upgrade_3_to_4(c) -> None:
    snapshots.create(c)  # models trained before have none


def _upgrade_4_to_5(c) -> None:
    # No heartbeat: a run left running by an earlier mnistnet (which never beats) is stale.
    c.execute(sa.text("ALTER TABLE runs ADD COLUMN heartbeat_at FLOAT"))


# from version -> the function bringing it to version + 1
UPGRADES = {1: _upgrade_1_to_2, 2: _upgrade_2_to_3, 3: _upgrade_3_to_4, 4: _upgrade_4_to_5}
_LOCK_ID = 7_702_839  # PostgreSQL advisory lock held while the schema is created or upgraded


def _version(c) -> int | None:
    if not sa.inspect(c).has_table("meta"):
        return None
    v = c.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(v) if v is not None else None


def migrate(engine: sa.Engine, url: str) -> None:
    """Create the schema, or upgrade an older one, in one transaction under a lock; refuse a
    newer one. A second process opening the store meanwhile waits, then finds it current."""
    with engine.connect() as c:
        c.info["immediate"] = True  # SQLite: BEGIN IMMEDIATE takes the write lock first
        with c.begin():
            if engine.dialect.name == "postgresql":
                c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
            version = _version(c)
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"the store at {public_url(url)} has schema version {version}, newer than this "
                                 f"mnistnet understands ({SCHEMA_VERSION}); upgrade mnistnet or set "
                                 "MNISTNET_DB_URL to another database")
            if version is None:
                metadata.create_all(c)
                c.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            while version < SCHEMA_VERSION:
                UPGRADES[version](c)
                version += 1
                c.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
