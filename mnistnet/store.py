"""The store: samples, runs, epoch metrics, models and drawings in one SQL database.

SQLAlchemy 2 Core. SQLite by default (a file in $XDG_DATA_HOME/mnistnet, WAL mode);
MNISTNET_DB_URL selects another database. The schema carries a version in the `meta`
table: older stores are upgraded at open, newer ones refused. Imports numpy, sqlalchemy
and the core; `import mnistnet` does not import this module, so the core stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from .data import MNIST, Split
from .modelfile import load_model, model_bytes
from .network import MLP

SCHEMA_VERSION = 2
SOURCES = ("mnist", "upload", "drawing")
RUN_STATUSES = ("running", "finished", "stopped", "interrupted", "failed")

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
    sa.Index("ix_samples_split", "dataset", "split"),
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("layer_sizes", sa.Text, nullable=False),  # JSON list
    sa.Column("config", sa.Text, nullable=False),  # JSON TrainConfig.to_dict()
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # cli, app or finetune
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String(255)),  # schema 2: who runs it, to tell a crash from a live run
    sa.Column("pid", sa.Integer),  # schema 2
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
)


class StoreError(RuntimeError):
    """The store cannot be used as it is; the message says why and what to do."""


def default_url() -> str:
    """MNISTNET_DB_URL, or SQLite in $XDG_DATA_HOME/mnistnet (default ~/.local/share/mnistnet)."""
    if os.environ.get("MNISTNET_DB_URL"):
        return os.environ["MNISTNET_DB_URL"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    folder = Path(base) / "mnistnet"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mnistnet.sqlite3'}"


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _upgrade_1_to_2(conn) -> None:
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN host VARCHAR(255)"))
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN pid INTEGER"))


UPGRADES = {1: _upgrade_1_to_2}  # from version -> function bringing it to version + 1


def _alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pixels(images: np.ndarray) -> list[bytes]:
    a = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, 784)
    return [row.tobytes() for row in a]


class Store:
    """One database. Thread-safe: each method uses its own connection and transaction."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        self.engine = sa.create_engine(self.url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()
        self.mark_interrupted()

    # -- schema ----------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        with self.engine.connect() as c:
            if not sa.inspect(c).has_table("meta"):
                return None
            v = c.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            return int(v) if v is not None else None

    def _migrate(self) -> None:
        version = self.schema_version()
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"the store at {self.url} has schema version {version}, newer than this "
                             f"mnistnet understands ({SCHEMA_VERSION}); upgrade mnistnet or set "
                             "MNISTNET_DB_URL to another database")
        with self.engine.begin() as c:
            if version is None:
                metadata.create_all(c)
                c.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            while version < SCHEMA_VERSION:
                UPGRADES[version](c)
                version += 1
                c.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))

    def mark_interrupted(self) -> int:
        """Mark runs left 'running' by a process that no longer exists as interrupted."""
        with self.engine.begin() as c:
            rows = c.execute(sa.select(runs.c.id, runs.c.host, runs.c.pid).where(runs.c.status == "running")).all()
            dead = [r.id for r in rows if not _alive(r.host, r.pid)]
            if dead:
                c.execute(runs.update().where(runs.c.id.in_(dead)).values(status="interrupted"))
        return len(dead)

    # -- samples ---------------------------------------------------------------------------
    def has_mnist(self) -> bool:
        with self.engine.connect() as c:
            n = c.execute(sa.select(sa.func.count()).select_from(samples).where(samples.c.dataset == "mnist")).scalar()
        return n == 70_000

    def import_mnist(self, data: MNIST) -> int:
        """Insert the verified MNIST splits once (idempotent); return how many were inserted."""
        if self.has_mnist():
            return 0
        now = time.time()
        with self.engine.begin() as c:
            c.execute(samples.delete().where(samples.c.dataset == "mnist"))  # a half import, if any
            total = 0
            for split_name in ("train", "val", "test"):
                split = getattr(data, split_name)
                rows = [{"dataset": "mnist", "split": split_name, "label": int(y), "pixels": p,
                         "source": "mnist", "created_at": now}
                        for y, p in zip(split.labels, _pixels(split.images))]
                c.execute(samples.insert(), rows)
                total += len(rows)
        return total

    def add_samples(self, images: np.ndarray, labels, source: str) -> list[int]:
        """images: (n, 28, 28) uint8, labels: n digits, source: upload or drawing -> new ids."""
        if source not in SOURCES or source == "mnist":
            raise ValueError(f"source must be 'upload' or 'drawing', got {source!r}")
        images = np.asarray(images)
        labels = [int(v) for v in labels]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images must be (n, 28, 28) uint8, got {images.shape} {images.dtype}")
        if len(labels) != len(images) or any(not 0 <= v <= 9 for v in labels):
            raise ValueError(f"labels must be {len(images)} digits 0-9, got {labels}")
        now = time.time()
        with self.engine.begin() as c:
            return [c.execute(samples.insert().values(dataset="user", split="user", label=y, pixels=p,
                                                      source=source, created_at=now)).inserted_primary_key[0]
                    for y, p in zip(labels, _pixels(images))]

    def load_split(self, dataset: str, split: str | None = None, source: str | None = None,
                   label: int | None = None, limit: int | None = None) -> Split:
        """Samples as a Split: images (n, 28, 28) uint8, labels (n,) int64, in id order."""
        q = sa.select(samples.c.label, samples.c.pixels).where(samples.c.dataset == dataset)
        if split is not None:
            q = q.where(samples.c.split == split)
        if source is not None:
            q = q.where(samples.c.source == source)
        if label is not None:
            q = q.where(samples.c.label == label)
        q = q.order_by(samples.c.id).limit(limit)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        images = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), 28, 28)
        return Split(images, labels)

    def load_mnist(self) -> MNIST:
        """The MNIST splits as stored (import_mnist first)."""
        if not self.has_mnist():
            raise StoreError("MNIST is not in the store yet: run `python -m mnistnet fetch`")
        return MNIST(*(self.load_split("mnist", s) for s in ("train", "val", "test")))

    def sample_counts(self) -> dict:
        """{(source, label): count} over all samples."""
        q = sa.select(samples.c.source, samples.c.label, sa.func.count()).group_by(samples.c.source, samples.c.label)
        with self.engine.connect() as c:
            return {(s, int(y)): int(n) for s, y, n in c.execute(q)}

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, layer_sizes, config: dict, origin: str) -> int:
        with self.engine.begin() as c:
            return c.execute(runs.insert().values(
                layer_sizes=json.dumps(list(layer_sizes)), config=json.dumps(config), status="running",
                origin=origin, started_at=time.time(), host=socket.gethostname(), pid=os.getpid(),
            )).inserted_primary_key[0]

    def add_epoch(self, run_id: int, record: dict) -> None:
        """Record one finished epoch (a History epoch record) in its own transaction."""
        with self.engine.begin() as c:
            c.execute(epochs.insert().values(run_id=run_id, epoch=int(record["epoch"]),
                                             test_accuracy=float(record["test"]["accuracy"]),
                                             metrics=json.dumps(record)))

    def end_run(self, run_id: int, status: str, model: MLP | None = None, error: str | None = None) -> int | None:
        """Set the final status; store the model (if given); return the model id."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(status=status, ended_at=time.time(),
                                                                      error=error))
            if model is None:
                return None
            return self._insert_model(c, model, f"run {run_id}", run_id)

    def _insert_model(self, c, model: MLP, name: str, run_id: int | None) -> int:
        blob = model_bytes(model)
        return c.execute(models.insert().values(run_id=run_id, name=name, npz=blob,
                                                sha256=hashlib.sha256(blob).hexdigest(),
                                                created_at=time.time())).inserted_primary_key[0]

    def add_uploaded_model(self, model: MLP, name: str) -> tuple[int, int]:
        """Store an uploaded model as a finished run of origin 'upload' carrying the epochs of
        its own history (if any), so it is listed, compared and linked like any run.
        -> (run id, model id)."""
        hist = model.history
        now = time.time()
        with self.engine.begin() as c:
            run_id = c.execute(runs.insert().values(
                layer_sizes=json.dumps(list(model.layer_sizes)), config=json.dumps(hist.config if hist else {}),
                status="finished", origin="upload", started_at=now, ended_at=now, error=f"uploaded as {name}",
            )).inserted_primary_key[0]
            for record in (hist.epochs if hist else []):
                c.execute(epochs.insert().values(run_id=run_id, epoch=int(record["epoch"]),
                                                 test_accuracy=float(record["test"]["accuracy"]),
                                                 metrics=json.dumps(record)))
            return run_id, self._insert_model(c, model, name, run_id)

    def list_runs(self) -> list[dict]:
        """Every run, newest first, with its last epoch's test metrics and its model id."""
        last = (sa.select(epochs.c.run_id, sa.func.max(epochs.c.epoch).label("n"))
                .group_by(epochs.c.run_id).subquery())
        q = (sa.select(runs, last.c.n, epochs.c.metrics, models.c.id.label("model_id"))
             .outerjoin(last, last.c.run_id == runs.c.id)
             .outerjoin(epochs, sa.and_(epochs.c.run_id == runs.c.id, epochs.c.epoch == last.c.n))
             .outerjoin(models, models.c.run_id == runs.c.id)
             .order_by(runs.c.id.desc()))
        out = []
        with self.engine.connect() as c:
            for r in c.execute(q).mappings():
                test = json.loads(r["metrics"])["test"] if r["metrics"] else None
                out.append({"id": r["id"], "status": r["status"], "origin": r["origin"],
                            "layer_sizes": json.loads(r["layer_sizes"]), "config": json.loads(r["config"]),
                            "started_at": r["started_at"], "ended_at": r["ended_at"], "error": r["error"],
                            "epochs": r["n"] or 0, "model_id": r["model_id"],
                            "test_correct": test and test["correct"], "test_total": test and test["total"],
                            "test_accuracy": test and test["accuracy"]})
        return out

    def run_epochs(self, run_id: int) -> list[dict]:
        q = sa.select(epochs.c.metrics).where(epochs.c.run_id == run_id).order_by(epochs.c.epoch)
        with self.engine.connect() as c:
            return [json.loads(m) for (m,) in c.execute(q)]

    def delete_run(self, run_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(epochs.delete().where(epochs.c.run_id == run_id))
            c.execute(models.delete().where(models.c.run_id == run_id))
            c.execute(runs.delete().where(runs.c.id == run_id))

    # -- models and drawings ---------------------------------------------------------------
    def model_blob(self, model_id: int) -> bytes:
        with self.engine.connect() as c:
            blob = c.execute(sa.select(models.c.npz).where(models.c.id == model_id)).scalar()
        if blob is None:
            raise KeyError(f"no model with id {model_id}")
        return blob

    def load_model(self, model_id: int) -> MLP:
        return load_model(self.model_blob(model_id))

    def add_drawing(self, pixels: np.ndarray, probabilities, model_id: int | None,
                    label: int | None = None) -> int:
        """pixels: (28, 28) uint8 as the network saw it; probabilities: 10 floats."""
        probs = [float(p) for p in probabilities]
        if np.asarray(pixels).shape != (28, 28) or len(probs) != 10:
            raise ValueError("a drawing needs (28, 28) pixels and 10 probabilities")
        with self.engine.begin() as c:
            return c.execute(drawings.insert().values(
                pixels=np.asarray(pixels, np.uint8).tobytes(), prediction=int(np.argmax(probs)),
                probabilities=json.dumps(probs), model_id=model_id, label=label,
                created_at=time.time())).inserted_primary_key[0]
