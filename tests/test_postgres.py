"""The throwaway PostgreSQL harness (tests/pg.py) itself, and two processes opening an old
store at the same moment, on SQLite and on PostgreSQL."""

import collections
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg import PostgresError, ThrowawayPostgres
from test_store import create_v1_store

from mnistnet.store import SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parent.parent


def test_server_is_postgresql_15_without_durability(postgres):
    with postgres.connect() as c:
        assert c.execute("select version()").fetchone()[0].startswith("PostgreSQL 15.")
        assert c.execute("show fsync").fetchone()[0] == "off"
        assert c.execute("show listen_addresses").fetchone()[0] == "127.0.0.1"


def test_databases_are_isolated(postgres):
    a, b = postgres.new_database(), postgres.new_database("named_by_the_test")
    assert b.endswith(f":{postgres.port}/named_by_the_test")
    with sa.create_engine(a).begin() as c:
        c.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        c.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine_b = sa.create_engine(b)
    assert not sa.inspect(engine_b).has_table("t")
    with engine_b.begin() as c:  # the same name is free in b
        c.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        assert c.execute(sa.text("SELECT count(*) FROM t")).scalar() == 0


def test_missing_binaries_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_BIN", str(tmp_path))
    with pytest.raises(PostgresError, match="no initdb in it: run `make postgres`"):
        ThrowawayPostgres().start()
    with pytest.raises(PostgresError, match="no initdb in it"):
        ThrowawayPostgres(bin_dir=tmp_path).start()


# Each opener first imports everything and connects once (loading the database driver takes
# longer than an upgrade), says it is ready, then waits for the go file: the two Store(url) calls
# start within about a millisecond of each other.
OPENER = """
import os, sys, time
import sqlalchemy as sa
from mnistnet.store import Store
url, ready, go = sys.argv[1:]
engine = sa.create_engine(url)
engine.connect().close()
engine.dispose()
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.0005)
Store(url)
"""


def columns(url: str) -> dict:
    """{table: Counter of its column names} as the database reports them."""
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    got = {t: collections.Counter(col["name"] for col in inspector.get_columns(t)) for t in inspector.get_table_names()}
    engine.dispose()
    return got


def race(url: str, folder: Path) -> list[tuple[int, str]]:
    """Two processes open Store(url) at the same moment -> [(exit code, stderr)] of each."""
    folder.mkdir()
    go, ready = folder / "go", [folder / f"ready{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, url, str(r), str(go)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in ready]
    try:
        deadline = time.time() + 60
        while not all(r.exists() for r in ready):
            assert time.time() < deadline, "the openers never got ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        return [(p.wait(60), p.communicate()[1]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def drop_everything(url: str) -> None:
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine)
    tables.drop_all(engine)
    engine.dispose()


def test_two_processes_upgrade_an_old_store_at_once(db_url, tmp_path, request):
    fresh = (f"sqlite:///{tmp_path / 'fresh.sqlite3'}" if db_url.startswith("sqlite")
             else request.getfixturevalue("postgres").new_database())
    Store(fresh).engine.dispose()
    current = columns(fresh)
    # Timing alone lets an unguarded upgrade get through now and then (about one race in eight
    # here), so the race is run three times, each on a new version-1 store.
    for attempt in range(3):
        drop_everything(db_url)
        create_v1_store(db_url)
        outcomes = race(db_url, tmp_path / f"race{attempt}")
        assert [code for code, _ in outcomes] == [0, 0], "\n".join(err for _, err in outcomes)
        store = Store(db_url)
        assert store.schema_version() == SCHEMA_VERSION
        assert [(r["id"], r["status"]) for r in store.list_runs()] == [(7, "interrupted")]
        store.engine.dispose()
        upgraded = columns(db_url)
        assert upgraded == current  # the same tables and columns as a new store, each column once
        assert all(n == 1 for table in upgraded.values() for n in table.values())
