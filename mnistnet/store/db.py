"""The Store: samples, runs, epoch metrics, models (and their snapshots), drawings and current
models in one database.

SQLAlchemy 2 Core. SQLite by default (a file in $XDG_DATA_HOME/mnistnet, WAL mode);
MNISTNET_DB_URL selects another database (PostgreSQL through psycopg 3). Imports numpy,
sqlalchemy and the core; `import mnistnet` does not import this package. Runs live in
mnistnet.store.runs (the queue, progress, stop flags); this module holds the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..data import MNIST, Split
from ..modelfile import load_model, model_bytes
from ..network import MLP
from ..snapshots import Snapshot, decode, encode
from .schema import SCHEMA_VERSION, StoreError, current, drawings, meta, migrate, models, samples, snapshots

SOURCES = ("mnist", "upload", "drawing")
_IMPORT_LOCK_ID = 7_702_840  # PostgreSQL advisory lock held while MNIST is imported


def default_url() -> str:
    """MNISTNET_DB_URL, or SQLite in $XDG_DATA_HOME/mnistnet (default ~/.local/share/mnistnet)."""
    if os.environ.get("MNISTNET_DB_URL"):
        return os.environ["MNISTNET_DB_URL"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    folder = Path(base) / "mnistnet"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mnistnet.sqlite3'}"


def _sqlite_connect(dbapi_conn, _record):
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin, DDL included
    cur = dbapi_conn.cursor()
    # First: switching to WAL needs a lock another process (an upgrade, an import) may hold.
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn):
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("immediate", False) else "BEGIN")


def _pixels(images: np.ndarray) -> list[bytes]:
    a = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, 784)
    return [row.tobytes() for row in a]


def _check_owner(owner) -> str:
    if not isinstance(owner, str) or not 0 < len(owner) <= 128:
        raise ValueError(f"owner must be a non-empty string of at most 128 characters, got {owner!r}")
    return owner


class BaseStore:
    """One database. Thread-safe: each method uses its own connection and transaction."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        if self.url.startswith("postgresql"):
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        else:
            self.engine = sa.create_engine(self.url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        migrate(self.engine, self.url)
        self._mnist_counts: dict | None = None  # MNIST is imported once, in one transaction

    @contextmanager
    def _write(self):
        """A transaction that writes. On SQLite it takes the write lock at BEGIN (IMMEDIATE):
        a deferred one that reads first cannot wait for a writer that committed meanwhile, and
        fails at once with "database is locked" instead."""
        with self.engine.connect() as c:
            c.info["immediate"] = self.engine.dialect.name == "sqlite"
            with c.begin():
                yield c

    def schema_version(self) -> int | None:
        with self.engine.connect() as c:
            if not sa.inspect(c).has_table("meta"):
                return None
            v = c.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            return int(v) if v is not None else None

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()

    def swap_meta(self, key: str, old: str | None, new: str) -> bool:
        """Set `key` to `new` if it is still `old` (None: absent); True if this call set it."""
        try:
            with self._write() as c:
                if old is None:  # two inserters: the primary key lets one through
                    c.execute(meta.insert().values(key=key, value=new))
                    return True
                done = c.execute(meta.update().where(meta.c.key == key, meta.c.value == old).values(value=new))
                return done.rowcount == 1
        except sa.exc.IntegrityError:
            return False

    # -- samples ---------------------------------------------------------------------------
    def has_mnist(self) -> bool:
        with self.engine.connect() as c:
            n = c.execute(sa.select(sa.func.count()).select_from(samples).where(samples.c.dataset == "mnist")).scalar()
        return n == 70_000

    def import_mnist(self, data: MNIST) -> int:
        """Insert the verified MNIST splits once (idempotent, and once however many processes
        call it at the same time: the count is taken under the import's lock); -> how many
        rows this call inserted."""
        if self.has_mnist():
            return 0
        now = time.time()
        with self._write() as c:  # SQLite: BEGIN IMMEDIATE serialises writers already
            if self.engine.dialect.name == "postgresql":
                c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _IMPORT_LOCK_ID})
            n = c.execute(sa.select(sa.func.count()).select_from(samples).where(samples.c.dataset == "mnist")).scalar()
            if n == 70_000:  # another process imported it while this one waited
                return 0
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

    def add_samples(self, images: np.ndarray, labels, source: str, owner: str) -> list[int]:
        """images: (n, 28, 28) uint8, labels: n digits, source: upload or drawing -> new ids."""
        if source not in SOURCES or source == "mnist":
            raise ValueError(f"source must be 'upload' or 'drawing', got {source!r}")
        _check_owner(owner)
        images = np.asarray(images)
        labels = [int(v) for v in labels]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images must be (n, 28, 28) uint8, got {images.shape} {images.dtype}")
        if len(labels) != len(images) or any(not 0 <= v <= 9 for v in labels):
            raise ValueError(f"labels must be {len(images)} digits 0-9, got {labels}")
        now = time.time()
        with self._write() as c:
            return [c.execute(samples.insert().values(dataset="user", split="user", label=y, pixels=p, owner=owner,
                                                      source=source, created_at=now)).inserted_primary_key[0]
                    for y, p in zip(labels, _pixels(images))]

    def load_split(self, dataset: str, split: str | None = None, source: str | None = None,
                   label: int | None = None, limit: int | None = None, owner: str | None = None) -> Split:
        """Samples as a Split: images (n, 28, 28) uint8, labels (n,) int64, in id order.
        `owner` keeps only that owner's samples."""
        q = sa.select(samples.c.label, samples.c.pixels).where(samples.c.dataset == dataset)
        for col, value in ((samples.c.split, split), (samples.c.source, source), (samples.c.label, label),
                           (samples.c.owner, owner)):
            if value is not None:
                q = q.where(col == value)
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

    def sample_counts(self, owner: str | None = None) -> dict:
        """{(source, label): count} over all samples (MNIST and everyone's), or MNIST and `owner`'s.
        MNIST's 70,000 are counted once per Store (they never change once imported): a page
        view counts only the visitors' samples (by the dataset index), 1 ms instead of 55."""
        q = sa.select(samples.c.source, samples.c.label, sa.func.count()).group_by(samples.c.source, samples.c.label)
        user = q.where(samples.c.dataset == "user")
        if owner is not None:
            user = user.where(samples.c.owner == owner)
        with self.engine.connect() as c:
            mnist = self._mnist_counts
            if mnist is None:
                mnist = {(s, int(y)): int(n) for s, y, n in c.execute(q.where(samples.c.dataset == "mnist"))}
                self._mnist_counts = mnist or None  # not imported yet: counted again next time
            return {**mnist, **{(s, int(y)): int(n) for s, y, n in c.execute(user)}}

    # -- models ----------------------------------------------------------------------------
    def _insert_model(self, c, model: MLP, name: str, run_id: int | None, owner: str | None,
                      epoch: int | None = None, blob: bytes | None = None) -> int:
        blob = model_bytes(model) if blob is None else blob
        return c.execute(models.insert().values(run_id=run_id, name=name, npz=blob, owner=owner, epoch=epoch,
                                                sha256=hashlib.sha256(blob).hexdigest(),
                                                created_at=time.time())).inserted_primary_key[0]

    def _npz(self, model_id: int) -> bytes:
        """The model's own file as stored (never with snapshots: those are rows of their own)."""
        with self.engine.connect() as c:
            blob = c.execute(sa.select(models.c.npz).where(models.c.id == model_id)).scalar()
        if blob is None:
            raise StoreError(f"there is no model #{model_id} in the store (it was deleted)")
        return blob

    def model_blob(self, model_id: int) -> bytes:
        """The model's file as a visitor downloads it: its .npz with its snapshots, if it has
        any (a model without any: the very bytes stored, e.g. as uploaded)."""
        blob = self._npz(model_id)
        snaps = self.model_snapshots(model_id)
        return model_bytes(load_model(blob), snaps) if snaps else blob

    def model_snapshots(self, model_id: int) -> list[Snapshot]:
        """The snapshots kept with model `model_id`, ascending epochs ([] for none, or no model)."""
        q = sa.select(snapshots.c.data).where(snapshots.c.model_id == model_id).order_by(snapshots.c.epoch)
        with self.engine.connect() as c:
            return [s for (data,) in c.execute(q) for s in decode(data)]

    def _add_snapshots(self, c, model_id: int, snaps, keep=None) -> None:
        """Store `snaps` with model `model_id`; then, if `keep` (epochs) is given, drop its
        snapshots of any other epoch."""
        for s in snaps:
            c.execute(snapshots.insert().values(model_id=model_id, epoch=s.epoch, data=encode([s])))
        if keep is not None:
            c.execute(snapshots.delete().where(snapshots.c.model_id == model_id,
                                               snapshots.c.epoch.not_in([float(e) for e in keep])))

    def model_sha256(self, model_id: int) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(models.c.sha256).where(models.c.id == model_id)).scalar()

    def load_model(self, model_id: int) -> MLP:
        return load_model(self._npz(model_id))

    def copy_model(self, model_id: int, owner: str, name: str) -> int:
        """A copy of model `model_id` (with its snapshots) that belongs to `owner` and to no
        run -> its id."""
        _check_owner(owner)
        with self._write() as c:
            row = c.execute(sa.select(models.c.npz, models.c.sha256, models.c.epoch)
                            .where(models.c.id == model_id)).first()
            if row is None:
                raise StoreError(f"there is no model #{model_id} in the store (it was deleted)")
            copy = c.execute(models.insert().values(run_id=None, name=name, npz=row.npz, sha256=row.sha256,
                                                    owner=owner, epoch=row.epoch, created_at=time.time())
                             ).inserted_primary_key[0]
            # its snapshots come along: the copy stays whole if the run is deleted
            c.execute(snapshots.insert().from_select(
                ["model_id", "epoch", "data"],
                sa.select(sa.literal(copy, sa.Integer), snapshots.c.epoch, snapshots.c.data)
                .where(snapshots.c.model_id == model_id)))
            return copy

    # -- each visitor's current model ------------------------------------------------------
    def set_current(self, owner: str, model_id: int, source: str, test_accuracy: float | None = None) -> None:
        """Make model `model_id` `owner`'s current model (an upsert: two at once never clash);
        a copy it replaces (no run) is deleted."""
        _check_owner(owner)
        with self._write() as c:
            self._set_current(c, owner, model_id, source, test_accuracy)

    def _current_locked(self, c, owner: str):
        """`owner`'s current row, locked until the transaction ends (PostgreSQL; SQLite's
        writers are serialised by BEGIN IMMEDIATE)."""
        q = sa.select(current.c.model_id, current.c.test_accuracy).where(current.c.owner == owner)
        if self.engine.dialect.name == "postgresql":
            q = q.with_for_update()
        return c.execute(q).first()

    def _set_current(self, c, owner: str, model_id: int, source: str, test_accuracy: float | None) -> None:
        old = self._current_locked(c, owner)
        values = {"owner": owner, "model_id": model_id, "source": source, "test_accuracy": test_accuracy,
                  "updated_at": time.time()}
        insert = (pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert)(current).values(**values)
        c.execute(insert.on_conflict_do_update(index_elements=[current.c.owner],
                                               set_={k: v for k, v in values.items() if k != "owner"}))
        if old is not None and old.model_id != model_id:
            c.execute(models.delete().where(models.c.id == old.model_id, models.c.run_id.is_(None),
                                            models.c.owner == owner))

    def current(self, owner: str) -> dict | None:
        """{model_id, source, test_accuracy} of `owner`'s current model, or None."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(current.c.model_id, current.c.source, current.c.test_accuracy)
                            .where(current.c.owner == owner)).mappings().first()
        return dict(row) if row else None

    # -- drawings --------------------------------------------------------------------------
    def add_drawing(self, pixels: np.ndarray, probabilities, model_id: int | None, owner: str,
                    label: int | None = None) -> int:
        """pixels: (28, 28) uint8 as the network saw it; probabilities: 10 floats."""
        _check_owner(owner)
        probs = [float(p) for p in probabilities]
        if np.asarray(pixels).shape != (28, 28) or len(probs) != 10:
            raise ValueError("a drawing needs (28, 28) pixels and 10 probabilities")
        with self._write() as c:
            return c.execute(drawings.insert().values(
                pixels=np.asarray(pixels, np.uint8).tobytes(), prediction=int(np.argmax(probs)), owner=owner,
                probabilities=json.dumps(probs), model_id=model_id, label=label,
                created_at=time.time())).inserted_primary_key[0]


__all__ = ["BaseStore", "SOURCES", "SCHEMA_VERSION", "StoreError", "default_url"]
