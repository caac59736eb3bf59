"""`make share`: the lab for a class on one link. Several Streamlit server processes behind
HAProxy (from Debian), all on one store and one training cluster.

    python -m mnistnet.share [--port 8501] [--host 0.0.0.0] [--servers N] [--workers N]

What it starts, each a child that dies with it (PR_SET_PDEATHSIG):
- one Dask scheduler and `--workers` single-threaded training workers, speaking mutual TLS with
  a certificate made for this start (mnistnet.clustertls), the workers at nice 10: the pages
  (every core, nice 0) always come first, so a class training at once never freezes Draw;
- `--servers` Streamlit processes on 127.0.0.1, one per core by default (one Python process
  does one core's page work), sharing one cookie secret (a login made on one holds on all);
- HAProxy on --host:--port: round-robin over the servers, and a cookie that keeps each browser
  on its server (its websocket session, uploads and media live there). A server that dies is
  taken out within 2 s; its browsers reconnect to another (option redispatch), where their
  identity (a key in the browser) and their work (the store) are the same.

The folder it prints holds share.json (addresses and pids), the TLS files, haproxy.cfg and
every process's log. Imports the store and distributed (through mnistnet.clustertls); never
imported by `import mnistnet`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .cluster import DASK_ENV
from .clustertls import make_credentials
from .data import load_mnist
from .store import Store, default_url

ROOT = Path(__file__).resolve().parent.parent
WORKER_NICE = 10
COOKIE = "MNISTNET_SERVER"


def _die_with_parent() -> None:  # in the child, between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def haproxy_path() -> str | None:
    """HAProxy's program (Debian puts it in /usr/sbin, not always on a user's PATH), or None."""
    found = shutil.which("haproxy")
    return found or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_config(host: str, port: int, server_ports: list[int]) -> str:
    """HAProxy's configuration: sticky round-robin over the servers, websockets kept open."""
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p} check cookie s{i} inter 1s fall 2 rise 1"
                        for i, p in enumerate(server_ports, start=1))
    return f"""global
    maxconn 4096

defaults
    mode http
    option redispatch
    retries 3
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h

frontend lab
    bind {host}:{port}
    default_backend pages

backend pages
    balance roundrobin
    cookie {COOKIE} insert indirect nocache httponly
    option httpchk GET /_stcore/health
{servers}
"""


class Share:
    """The processes of one shared lab; `start()` then `wait()`, `stop()` at the end."""

    def __init__(self, port: int, host: str, servers: int, workers: int, db_url: str, folder: str | None = None):
        self.port, self.host, self.n_servers, self.n_workers, self.db_url = port, host, servers, workers, db_url
        self.folder = Path(folder or tempfile.mkdtemp(prefix="mnistnet-share-"))
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str], env: dict, nice: int = 0) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        cmd = (["nice", "-n", str(nice)] if nice else []) + args
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.procs[name] = p
        return p

    def start(self) -> Share:
        store = Store(self.db_url)  # the schema made, MNIST imported once, before anyone trains
        store.import_mnist(load_mnist())
        store.engine.dispose()
        creds = make_credentials(str(self.folder / "tls"))
        base = {**os.environ, "MNISTNET_DB_URL": self.db_url, "PYTHONPATH": str(ROOT)}
        sched_file = self.folder / "scheduler.json"
        self._start("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file),
                                  *creds.scheduler_args()], {**base, **DASK_ENV})
        address = self._scheduler_address(sched_file)
        for i in range(self.n_workers):
            self._start(f"worker-{i}", [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                        "--no-nanny", "--no-dashboard", "--name", f"share-{i}", "--death-timeout", "60",
                                        *creds.worker_args()], {**base, **DASK_ENV}, nice=WORKER_NICE)
        page_env = {**base, "MNISTNET_SCHEDULER": address, "MNISTNET_TLS_DIR": creds.folder,
                    "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32)}  # Streamlit refuses it as a flag
        ports = [free_port() for _ in range(self.n_servers)]
        for i, p in enumerate(ports, start=1):
            self._start(f"server-{i}", [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                        "--server.address", "127.0.0.1", "--server.port", str(p),
                                        "--browser.gatherUsageStats", "false"],
                        page_env)
        for p in ports:
            self._wait_health(f"http://127.0.0.1:{p}/_stcore/health")
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.host, self.port, ports))
        self._start("haproxy", [haproxy_path() or "haproxy", "-db", "-f", str(cfg)], base)
        self._wait_health(f"http://127.0.0.1:{self.port}/_stcore/health")
        info = {"url": f"http://{self.host}:{self.port}", "scheduler": address, "servers": [
            {"name": f"s{i}", "port": p, "pid": self.procs[f"server-{i}"].pid} for i, p in enumerate(ports, start=1)],
            "workers": [self.procs[f"worker-{i}"].pid for i in range(self.n_workers)], "folder": str(self.folder)}
        (self.folder / "share.json").write_text(json.dumps(info, indent=1))
        return self

    def _scheduler_address(self, sched_file: Path, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while not sched_file.exists():
            if self.procs["scheduler"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the training cluster's scheduler did not start (see {self.folder}/scheduler.log)")
            time.sleep(0.05)
        time.sleep(0.05)
        return json.loads(sched_file.read_text())["address"]

    def _wait_health(self, url: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer ({', '.join(dead) or 'too slow'}; logs in {self.folder})")
            time.sleep(0.2)

    def wait(self) -> None:
        """Until a signal, or the proxy ends. A server that dies is not restarted: the proxy
        sends its browsers to the others."""
        while self.procs["haproxy"].poll() is None:
            time.sleep(1.0)

    def stop(self) -> None:
        """The workers first (a worker whose scheduler has gone hangs in its close for 10 s),
        then everything else."""
        workers = [p for n, p in self.procs.items() if n.startswith("worker-")]
        for group in (workers, [p for p in self.procs.values() if p not in workers]):
            for p in group:
                if p.poll() is None:
                    p.terminate()
            for p in group:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mnistnet.share", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument("--host", default="0.0.0.0", help="where the proxy listens (0.0.0.0: the local network)")
    ap.add_argument("--servers", type=int, default=os.cpu_count() or 1, help="Streamlit processes (one a core)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="training workers, at nice 10")
    ap.add_argument("--folder", help="where its logs, TLS files and share.json go (default: a new temporary one)")
    args = ap.parse_args(argv)
    if not 1 <= args.servers <= 32 or not 1 <= args.workers <= 64:
        print("mnistnet.share: error: --servers must be 1 to 32 and --workers 1 to 64", file=sys.stderr)
        return 2
    if haproxy_path() is None:
        print("mnistnet.share: error: HAProxy is not installed: run `make proxy` or `sudo apt-get install -y haproxy`",
              file=sys.stderr)
        return 1
    share = Share(args.port, args.host, args.servers, args.workers, default_url(), args.folder)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        share.start()
        print(f"The lab is at http://{args.host}:{args.port} ({args.servers} servers, {args.workers} training "
              f"workers at nice {WORKER_NICE}); its folder: {share.folder}", flush=True)
        share.wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(f"mnistnet.share: error: {e}", file=sys.stderr)
        return 1
    finally:
        share.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
