"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, listen on
127.0.0.1 on a free port, one fresh database per test, stopped and deleted on exit.

Standard library and psycopg only. Needs the server binaries (Debian: `apt-get install
postgresql`, or `make postgres`). PostgreSQL refuses to run as root, so as root the server
runs as the `postgres` user, in a folder that user owns. Durability is switched off (fsync,
synchronous_commit, full_page_writes): the data is thrown away anyway, and it starts faster.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
}
HINT = "run `make postgres`, or `sudo apt-get install -y postgresql`, or set PG_BIN to the folder holding initdb"


class PostgresError(RuntimeError):
    """The throwaway server could not be found, started or used; the message says why."""


def find_bin() -> Path:
    """The folder holding initdb, pg_ctl and postgres: $PG_BIN, else Debian's newest
    /usr/lib/postgresql/N/bin, else wherever initdb is on PATH."""
    if os.environ.get("PG_BIN"):
        folder = Path(os.environ["PG_BIN"])
        if not (folder / "initdb").exists():
            raise PostgresError(f"PG_BIN={folder} has no initdb in it: {HINT}")
        return folder
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                    key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if debian:
        return Path(debian[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresError(f"the PostgreSQL server binaries (initdb, pg_ctl) are not installed: {HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    """One server in a temporary folder. `with ThrowawayPostgres() as pg: url = pg.new_database()`."""

    def __init__(self, bin_dir: Path | None = None):
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self.folder: Path | None = None
        self.port: int | None = None
        self._running = False

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def _run(self, *args: str) -> None:
        """Run a server binary, as `postgres` when we are root."""
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}")

    def start(self) -> ThrowawayPostgres:
        if self._running:
            return self
        self.bin_dir = self.bin_dir or find_bin()
        if not (self.bin_dir / "initdb").exists():
            raise PostgresError(f"{self.bin_dir} has no initdb in it: {HINT}")
        self.folder = Path(tempfile.mkdtemp(prefix="mnistnet-pg-"))  # also the unix socket's folder
        try:
            if os.geteuid() == 0:
                try:
                    user = pwd.getpwnam("postgres")
                except KeyError:
                    raise PostgresError(f"running as root, but there is no `postgres` user to run the server as: "
                                        f"{HINT}") from None
                os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                      "--locale=C", "--no-sync", "--no-instructions")
            self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.folder}'"}
            with open(self.data / "postgresql.conf", "a") as f:
                f.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
            self._run("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data), "-l", str(self.log))
            self._running = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server at once (nothing to keep) and delete its folder. Safe to call twice,
        and after a failed start (a server that came up too slowly is stopped all the same)."""
        self._running = False
        try:
            if self.folder is not None and (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data))
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one of this server's databases (psycopg 3 driver)."""
        if not self._running:
            raise PostgresError("the throwaway PostgreSQL server is not running: call start() first")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """A plain psycopg connection in autocommit mode (CREATE DATABASE needs one)."""
        self.url(database)  # refuses when not running
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                               autocommit=True)

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh unique name unless given) and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with self.connect() as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)
