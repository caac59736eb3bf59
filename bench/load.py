"""Load harness: N visitors of the lab without N browsers (run by hand, not a test).

    .venv/bin/python bench/load.py --visitors 30 --spread 10 [--train 10] [--json]
                                   [--share N | --url http://127.0.0.1:PORT]

Each visitor is a real Streamlit session over the server's websocket, driven as the lab's page
in a browser drives it (bench/loadlib.py says how; tests/test_load.py holds it to Chromium).
A class follows the teacher step by step: every visitor takes a step, the step's visitors
starting evenly over --spread seconds, and the next step starts when all are done:

    home            open the lab (a new tab: websocket, first run, the identity key's run)
    draw_open       the Draw page                 draw_stroke  one pen-up (--drawings digits,
    draw_clear      the Clear button                           from bench/strokes.py)
    analyze_open    the Analyze page              analyze_cell a click on the confusion matrix
    inside_open     the Inside page               train_open   the Train page
    runs_open       the Runs page                 data_open    the Data page
    sweep_open      the Sweep page
    train_start     the first --train visitors click Start on the seed preset, then watch:
    train_poll      each rerun of the page's live fragments until the run ends (--watch s)
    draw_stroke_t   meanwhile the others draw on Draw again (draw_open_t, draw_clear_t)

Per action: latency from the BackMsg sent to the script_finished ending it (the identity run
included on home), failures (an exception element, a timeout, a closed socket), bytes received
(websocket payloads plus the images the page shows) and the server's CPU: its utime+stime over
a step divided by the step's actions (the step with train_start and train_poll shares it out
over both; the training processes' CPU and the proxy's are counted apart). Memory: the
server's RSS growth from before the first visitor to the last step, divided by the visitors.
With several servers, CPU and RSS are their sums.

Without --url it starts its own lab on a fresh SQLite store in a temporary folder and stops it
at the end: one server (`streamlit run app.py` on a free 127.0.0.1 port), or with --share N
`python -m mnistnet.share --servers N --workers 2` (N Streamlit processes behind HAProxy's
sticky cookie, one TLS training cluster), whose share.json gives the servers' pids; it is
stopped with SIGINT. A visitor keeps its cookies as a browser does, so behind the proxy it
stays on one server; one warm-up visitor is pinned to each server by that cookie.
The lab's default model is what a new visitor gets (ui/session.py); --model cli trains it with
the CLI and makes it the default before the lab starts, --model click has a first visitor press
"Train the default model" as in a class. Only 127.0.0.1 is ever a target; at most 60 visitors;
--time-limit bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadlib  # noqa: E402

from mnistnet.share import COOKIE  # noqa: E402 (the proxy's sticky cookie, naming a server)

MAX_VISITORS = 60
MAX_SHARE = 8  # servers behind the proxy
SHARE_WORKERS = 2  # the shared lab's training workers
CELLS = [(4, 9), (7, 2), (3, 5), (9, 4), (5, 3), (2, 7), (8, 3), (1, 7)]  # (true, predicted)
TICK = os.sysconf("SC_CLK_TCK")


# -- the server ----------------------------------------------------------------------------

def check_url(url: str) -> str:
    """http://127.0.0.1:PORT, or ValueError: the harness sends traffic to this machine only."""
    u = urlsplit(url)
    if u.scheme != "http" or u.hostname != "127.0.0.1" or not u.port or u.path not in ("", "/"):
        raise ValueError(f"--url must be http://127.0.0.1:PORT (this machine only), got {url!r}")
    return f"http://127.0.0.1:{u.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_store(db_url: str, train_args: list[str]) -> int:
    """Train the lab's default model with the CLI into the store at db_url and make it the
    default every new visitor gets (the meta key ui/session.py reads) -> its run id."""
    from mnistnet.store import Store
    from ui.session import DEFAULT_RUN

    env = {**os.environ, "MNISTNET_DB_URL": db_url}
    out = subprocess.run([sys.executable, "-m", "mnistnet", "train", *train_args, "--json", "--quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    run_id = json.loads(out.stdout)["run_id"]
    store = Store(db_url)
    if not store.swap_meta(DEFAULT_RUN, None, str(run_id)):
        raise RuntimeError(f"the store at {db_url} has a default model already")
    store.engine.dispose()
    return run_id


class Server:
    """`streamlit run app.py` on a free 127.0.0.1 port with a store of its own, as
    tests/test_browser.py starts it (health checked every 0.2 s, terminate then kill)."""

    def __init__(self, train_args: list[str] | None):
        self.folder = Path(tempfile.mkdtemp(prefix="mnistnet-load-"))
        self.db_url = f"sqlite:///{self.folder / 'mnistnet.sqlite3'}"
        self.model_run = prepare_store(self.db_url, train_args) if train_args is not None else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.folder / "server.log", "w")
        env = {**os.environ, "MNISTNET_DB_URL": self.db_url}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port),
             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=self.log,
            stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.processes = Processes([self.pid], root=self.pid)  # its training cluster: its children
        self.warm_cookies = [{}]
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit did not answer at {self.url} within {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def tracebacks(self) -> list[str]:
        return log_tracebacks([self.folder / "server.log"])


class SharedLab:
    """`python -m mnistnet.share` with n servers and SHARE_WORKERS training workers, its proxy on
    a free 127.0.0.1 port, on a store of its own prepared as Server's; the same attributes as
    Server (url, processes, folder, stop, tracebacks). share.json names the servers (the
    values of the proxy's cookie) and their pids."""

    def __init__(self, n_servers: int, train_args: list[str] | None, timeout: float = 240.0):
        if not 1 <= n_servers <= MAX_SHARE:
            raise ValueError(f"servers must be from 1 to {MAX_SHARE}, got {n_servers}")
        self.folder = Path(tempfile.mkdtemp(prefix="mnistnet-load-share-"))
        self.db_url = f"sqlite:///{self.folder / 'mnistnet.sqlite3'}"
        self.model_run = prepare_store(self.db_url, train_args) if train_args is not None else None
        self.port = free_port()
        self.log = open(self.folder / "share.log", "w")
        env = {**os.environ, "MNISTNET_DB_URL": self.db_url}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mnistnet.share", "--port", str(self.port), "--host", "127.0.0.1",
             "--servers", str(n_servers), "--workers", str(SHARE_WORKERS), "--folder", str(self.folder / "share")],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.info = self._wait_info(timeout)
        except RuntimeError:
            self.stop()
            raise
        self.url = check_url(self.info["url"])
        self.servers = {s["name"]: s["pid"] for s in self.info["servers"]}  # cookie value -> pid
        proxy = [c for c in children(self.proc.pid) if process_name(c) == "haproxy"]
        self.processes = Processes(list(self.servers.values()), root=self.proc.pid,
                                   proxy=proxy[0] if proxy else None)
        self.warm_cookies = [{COOKIE: name} for name in self.servers]

    def _wait_info(self, timeout: float) -> dict:
        """share.json, written once the servers and the proxy answer."""
        info = self.folder / "share" / "share.json"
        deadline = time.monotonic() + timeout
        while not info.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mnistnet.share exited with code {self.proc.returncode}; see {self.log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mnistnet.share did not start within {timeout:.0f} s; see {self.log.name}")
            time.sleep(0.2)
        time.sleep(0.05)  # written in one call, but not atomically
        return json.loads(info.read_text())

    def stop(self) -> None:
        """SIGINT, as a teacher's Ctrl-C: mnistnet.share stops its children, then itself."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def tracebacks(self) -> list[str]:
        return log_tracebacks(sorted((self.folder / "share").glob("server-*.log")))


def log_tracebacks(logs: list[Path]) -> list[str]:
    """The logs' tracebacks, but for a dropped websocket's (as tests/test_browser.py)."""
    blocks = [b for log in logs if log.exists()
              for b in log.read_text(errors="replace").split("Traceback (most recent call last):")[1:]]
    return [b.strip()[-600:] for b in blocks if "WebSocketDisconnected" not in b]


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:port (its socket's inode in /proc)."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == want and f[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{f[9]}]")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
            except OSError:
                continue
    return None


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, s (fields 14 and 15 of /proc/pid/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    f = stat[stat.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / TICK


def parents() -> dict[int, int]:
    """pid -> parent pid, of every process now (field 4 of /proc/pid/stat)."""
    parent = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                parent[int(proc.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except OSError:
                continue
    return parent


def children(pid: int) -> list[int]:
    return [c for c, p in parents().items() if p == pid]


def descendants(pid: int) -> list[int]:
    parent, kids, todo = parents(), [], [pid]
    while todo:
        p = todo.pop()
        found = [c for c, pp in parent.items() if pp == p]
        kids += found
        todo += found
    return kids


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def total_cpu(pids) -> float:
    """utime + stime summed over the pids still living, s."""
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


@dataclass
class Processes:
    """What a report measures: the page servers (CPU per server, RSS summed), the training
    processes (every other descendant of `root`: a lone server's own cluster, or the shared
    lab's scheduler and workers) and the proxy (CPU)."""

    servers: list[int]
    root: int | None = None
    proxy: int | None = None

    def sample(self) -> dict:
        """-> {"servers_cpu_s": [s per server], "workers_cpu_s": s, "proxy_cpu_s": s or None,
        "rss_bytes": bytes summed over the servers}"""
        others = set(self.servers) | {self.proxy}
        training = [p for p in descendants(self.root) if p not in others] if self.root else []
        return {"servers_cpu_s": [total_cpu([p]) for p in self.servers], "workers_cpu_s": total_cpu(training),
                "proxy_cpu_s": total_cpu([self.proxy]) if self.proxy else None,
                "rss_bytes": sum(rss_bytes(p) for p in self.servers)}


def cpu_delta(before: dict, after: dict) -> dict:
    """A step's CPU, s: the servers' (summed and per server), the training's and the proxy's."""
    per = [b - a for a, b in zip(before["servers_cpu_s"], after["servers_cpu_s"])]
    proxy = after["proxy_cpu_s"] - before["proxy_cpu_s"] if before["proxy_cpu_s"] is not None else None
    return {"server_cpu_s": sum(per), "servers_cpu_s": per,
            "workers_cpu_s": after["workers_cpu_s"] - before["workers_cpu_s"], "proxy_cpu_s": proxy}


# -- the class -------------------------------------------------------------------------------

async def draw_step(v: loadlib.Visitor, drawing, pause: float, name: str = "draw_stroke") -> None:
    for k in range(1, len(drawing.strokes) + 1):
        res = await v.stroke(drawing, k, name)
        if res.failure:
            return
        if k < len(drawing.strokes):
            await asyncio.sleep(pause)  # the pen moves to the next stroke


async def draw_while_training(v: loadlib.Visitor, i: int, opts, drawings) -> None:
    """A visitor who does not train goes back to Draw and draws --drawings digits while the
    others' runs train (their actions: draw_open_t, draw_stroke_t, draw_clear_t)."""
    await asyncio.sleep(2.0)  # the trainers' Start first
    await v.goto("Draw", "draw_open_t")
    for k in range(opts.drawings):
        await draw_step(v, drawings[(i * opts.drawings + k + 1) % len(drawings)], opts.think, "draw_stroke_t")
        if k < opts.drawings - 1:
            await v.click("draw_clear_t", label="Clear")


async def train_step(v: loadlib.Visitor, opts) -> None:
    """Start a seed-preset run as the form shows it (the preset picked if the form shows another),
    then stay on the page until the run ends or --watch s pass (then Stop)."""
    preset = v.find("button_group", "train.w.preset")
    shown = v.values.get(preset.id) if preset is not None else None
    if shown is not None and list(shown.string_array_value.data) != ["Seed report"]:
        if (await v.set_value("train_preset", "button_group", "train.w.preset",
                              string_array_value={"data": ["Seed report"]})).failure:
            return
    if opts.train_size and (await v.set_value("train_size", "number_input", "train.w.train_size",
                                              int_value=opts.train_size)).failure:
        return
    start = await v.click("train_start", key="train.start")
    if start.failure:
        return
    t0 = time.monotonic() - start.seconds
    await v.watch(opts.watch, "train_poll")
    ended = [t for t in v.texts("progress") if t.startswith(("Finished in", "Stopped", "Failed", "Interrupted"))]
    run = loadlib.Result("train_run", seconds=time.monotonic() - t0)
    if v.auto:  # still going at --watch: stop it, as a visitor who leaves would not, but a bench must
        run.failure = f"still running after --watch {opts.watch:.0f} s"
        await v.click("train_stop", key="train.stop")
    elif not any(t.startswith("Finished in") for t in ended):
        run.failure = f"the run ended as: {ended[0] if ended else v.texts('alert') or 'nothing shown'}"[:200]
    v.results.append(run)


def steps(opts, drawings) -> list[tuple[str, callable]]:
    """(step name, async f(visitor, index)) in the class's order."""
    out = [("home", lambda v, i: v.open("/")), ("draw_open", lambda v, i: v.goto("Draw", "draw_open"))]
    for k in range(opts.drawings):
        out.append(("draw_stroke", lambda v, i, k=k: draw_step(v, drawings[(i * opts.drawings + k) % len(drawings)],
                                                              opts.think)))
        if k < opts.drawings - 1:
            out.append(("draw_clear", lambda v, i: v.click("draw_clear", label="Clear")))
    out += [("analyze_open", lambda v, i: v.goto("Analyze", "analyze_open")),
            ("analyze_cell", lambda v, i: v.select_cell(*CELLS[i % len(CELLS)])),
            ("inside_open", lambda v, i: v.goto("Inside", "inside_open")),
            ("train_open", lambda v, i: v.goto("Train", "train_open"))]
    if opts.train:  # on the Train page: Start, then watch; the others draw meanwhile
        out.append(("train", lambda v, i: train_step(v, opts) if i < opts.train else
                    draw_while_training(v, i, opts, drawings)))
    out += [("runs_open", lambda v, i: v.goto("Runs", "runs_open")),
            ("data_open", lambda v, i: v.goto("Data", "data_open")),
            ("sweep_open", lambda v, i: v.goto("Sweep", "sweep_open"))]
    return out


async def run_step(name, fn, visitors, spread: float, budget: float) -> bool:
    """Every visitor takes the step, visitor i starting at i * spread / n s. -> False when the
    time budget ran out (the unfinished ones are cancelled)."""
    n = len(visitors)

    async def one(i, v):
        await asyncio.sleep(i * spread / n)
        await fn(v, i)
    tasks = [asyncio.create_task(one(i, v)) for i, v in enumerate(visitors)]
    done, pending = await asyncio.wait(tasks, timeout=max(budget, 0.001))
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for t in done:
        if t.exception() is not None:
            raise t.exception()
    return not pending


async def ensure_model(v: loadlib.Visitor, opts) -> list[loadlib.Result]:
    """If the lab has no model yet, press "Train the default model" and wait for it, as the
    first visitor of a class would."""
    if v.find("button", "train_default") is None:
        return []
    if opts.model != "click" and opts.url is None:
        raise RuntimeError("the lab offers to train its default model: prepare_store did not make one")
    res = [await v.click("train_default_model", key="train_default")]
    res += await v.watch(300.0, "default_model_poll")
    return res


async def warm_up(url: str, opts, drawing, cookies: dict[str, str], first: bool) -> list[loadlib.Result]:
    """One visitor through the pages first (pinned to a server by `cookies`): the server imports
    and caches what a class's first visitor would otherwise wait for (cold start is
    bench/app_latency.py's). Without --warm-up only the first opens Home (the default model)."""
    if not (first or opts.warm_up):
        return []
    v = loadlib.Visitor(url, secrets.token_hex(16), opts.timeout, cookies=cookies)
    try:
        await v.open("/")
        await ensure_model(v, opts)
        if not opts.warm_up:
            return v.results
        await v.goto("Draw", "draw_open")
        await draw_step(v, drawing, 0.0)
        for page in ("Analyze", "Inside", "Train", "Runs", "Data", "Sweep"):
            await v.goto(page, page.lower() + "_open")
        return v.results
    finally:
        await v.close()


async def run_class(url: str, processes: Processes | None, opts, plan=None, warm_cookies=({},)) -> dict:
    """The class: warm-up visitors (one per entry of warm_cookies, each pinned by its cookies),
    then opts.visitors through `plan` (default: steps(opts, ...)), each step measured."""
    drawings = loadlib.class_drawings(max(opts.visitors * opts.drawings, 1), seed=opts.seed)
    t_start = time.monotonic()
    warm = []
    for i, cookies in enumerate(warm_cookies):
        warm += await warm_up(url, opts, drawings[0], cookies, first=i == 0)
    visitors = [loadlib.Visitor(url, secrets.token_hex(16), opts.timeout) for _ in range(opts.visitors)]
    rounds, complete = [], True
    sample0 = processes.sample() if processes else None
    try:
        for name, fn in steps(opts, drawings) if plan is None else plan:
            before = [len(v.results) for v in visitors]
            s0 = processes.sample() if processes else None
            t0 = time.monotonic()
            budget = opts.time_limit - (time.monotonic() - t_start)
            complete = await run_step(name, fn, visitors, opts.spread, budget)
            actions = [r for v, b in zip(visitors, before) for r in v.results[b:]]
            who = [i for i, (v, b) in enumerate(zip(visitors, before)) for _ in v.results[b:]]
            s1 = processes.sample() if processes else None
            rounds.append({
                "step": name, "seconds": time.monotonic() - t0,
                "actions": sum(r.reruns > 0 for r in actions),  # not train_run: it sends nothing
                "action_names": sorted({r.name for r in actions}),
                **(cpu_delta(s0, s1) if processes else {"server_cpu_s": None, "workers_cpu_s": None}),
                "rss_bytes": s1["rss_bytes"] if processes else None, "results": actions, "visitors": who})
            if not complete:
                break
    finally:
        await asyncio.gather(*(v.close() for v in visitors), return_exceptions=True)
    total = cpu_delta(sample0, processes.sample()) if processes else None
    return {"warmup": warm, "rounds": rounds, "complete": complete,
            "rss_before": sample0["rss_bytes"] if processes else None, "seconds": time.monotonic() - t_start,
            "cpu": total, "servers": [v.cookies.get(COOKIE, "-") for v in visitors]}


# -- the report ------------------------------------------------------------------------------

def p95(xs: list[float]) -> float:
    """Nearest rank: the smallest value with at least 95% of them at or below it."""
    s = sorted(xs)
    return s[max(math.ceil(0.95 * len(s)) - 1, 0)]


def summarise(run: dict, n_visitors: int) -> dict:
    """Per action: n, latency median / p95 / max (s), failures, KB received per action and the
    server's CPU ms per action (its step's CPU over the step's actions)."""
    by_name: dict[str, list] = {}
    cpu: dict[str, list[float]] = {}  # name -> [step CPU s, step actions]
    shared: dict[str, set] = {}  # name -> the other actions of its steps (train_run sends nothing)
    for rnd in run["rounds"]:
        for r in rnd["results"]:
            by_name.setdefault(r.name, []).append(r)
        for name in rnd["action_names"]:
            shared.setdefault(name, set()).update(set(rnd["action_names"]) - {name, "train_run"})
        if rnd["server_cpu_s"] is not None and rnd["actions"]:
            for name in rnd["action_names"]:
                c = cpu.setdefault(name, [0.0, 0])
                c[0] += rnd["server_cpu_s"]
                c[1] += rnd["actions"]
    actions = {}
    for name, rs in by_name.items():
        secs = [r.seconds for r in rs if r.failure is None] or [math.nan]
        actions[name] = {
            "n": len(rs), "median_s": statistics.median(secs), "p95_s": p95(secs), "max_s": max(secs),
            "failures": sum(r.failure is not None for r in rs),
            "kb_per_action": sum(r.ws_bytes + r.media_bytes for r in rs) / len(rs) / 1024,
            "media_kb_per_action": sum(r.media_bytes for r in rs) / len(rs) / 1024,
            "server_cpu_ms_per_action": 1000 * cpu[name][0] / cpu[name][1] if name in cpu else None,
            "cpu_shared_with": sorted(shared.get(name, ()))}
    rss = [rnd["rss_bytes"] for rnd in run["rounds"] if rnd["rss_bytes"]]
    memory = None
    if run["rss_before"] and rss:
        memory = {"rss_before_mb": run["rss_before"] / 2**20, "rss_after_mb": rss[-1] / 2**20,
                  "per_session_mb": (rss[-1] - run["rss_before"]) / 2**20 / max(n_visitors, 1)}
    failures = {}
    for rnd in run["rounds"]:
        for r in rnd["results"]:
            if r.failure:
                failures.setdefault(f"{r.name}: {r.failure}", 0)
                failures[f"{r.name}: {r.failure}"] += 1
    steps_out = [{k: v for k, v in rnd.items() if k not in ("results", "visitors")} for rnd in run["rounds"]]
    return {"actions": actions, "memory": memory, "failures": failures, "steps": steps_out,
            "cpu": run.get("cpu"), "visitors_per_server": dict(Counter(run.get("servers", [])))}


def table(summary: dict) -> str:
    head = (f"{'action':<14} {'n':>4} {'median s':>9} {'p95 s':>7} {'max s':>7} {'fail':>5} "
            f"{'KB/action':>10} {'CPU ms/action':>14}")
    lines = [head, "-" * len(head)]
    for name, a in summary["actions"].items():
        c = a["server_cpu_ms_per_action"]
        cpu = "" if c is None else f"{c:.0f}" + ("*" if a["cpu_shared_with"] else "")
        times = " ".join(f"{a[k]:>{w}.3f}" if not math.isnan(a[k]) else f"{'-':>{w}}"
                         for k, w in (("median_s", 9), ("p95_s", 7), ("max_s", 7)))
        lines.append(f"{name:<14} {a['n']:>4} {times} {a['failures']:>5} {a['kb_per_action']:>10.1f} {cpu:>14}")
    if any(a["cpu_shared_with"] for a in summary["actions"].values()):
        lines.append("* CPU of a step whose actions are of several kinds, shared out over all of them")
    m = summary["memory"]
    if m:
        lines.append(f"server RSS {m['rss_before_mb']:.0f} MB before the visitors, {m['rss_after_mb']:.0f} MB "
                     f"after the last step: {m['per_session_mb']:.1f} MB per session")
    c = summary["cpu"]
    if c:
        per = ", ".join(f"{x:.1f}" for x in c["servers_cpu_s"])
        proxy = "" if c["proxy_cpu_s"] is None else f", the proxy {c['proxy_cpu_s']:.1f} s"
        lines.append(f"CPU after the warm-up: servers {c['server_cpu_s']:.1f} s ({per}), "
                     f"training {c['workers_cpu_s']:.1f} s{proxy}")
    if summary["visitors_per_server"] and set(summary["visitors_per_server"]) != {"-"}:
        lines.append("visitors per server (the proxy's cookie): "
                     + ", ".join(f"{k} {n}" for k, n in sorted(summary["visitors_per_server"].items())))
    for s in summary["steps"]:
        if s["workers_cpu_s"]:
            lines.append(f"step {s['step']}: training processes used {s['workers_cpu_s']:.1f} s of CPU "
                         f"(the servers {s['server_cpu_s']:.1f} s) in {s['seconds']:.1f} s")
    for what, n in summary["failures"].items():
        lines.append(f"FAILED x{n}: {what}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visitors", type=int, default=5, help=f"simulated visitors, 1..{MAX_VISITORS}")
    p.add_argument("--spread", type=float, default=10.0, help="a step's visitors start over this many s")
    p.add_argument("--train", type=int, default=0, help="visitors who start a run on Train (the first ones)")
    p.add_argument("--url", help="a running lab, http://127.0.0.1:PORT (default: start one)")
    p.add_argument("--share", type=int, metavar="N",
                   help=f"start `python -m mnistnet.share` with N servers (1..{MAX_SHARE}) and "
                        f"{SHARE_WORKERS} training workers instead of one server")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--drawings", type=int, default=3, help="digits each visitor draws (Clear between)")
    p.add_argument("--think", type=float, default=0.3, help="pause between a digit's strokes, s")
    p.add_argument("--watch", type=float, default=180.0, help="how long a trainer watches their run, s")
    p.add_argument("--train-size", type=int, help="type this into Training images before Start")
    p.add_argument("--timeout", type=float, default=60.0, help="an action's limit, s")
    p.add_argument("--time-limit", type=float, default=900.0, help="the whole run's limit, s")
    p.add_argument("--model", choices=["cli", "click"], default="cli",
                   help="own server: train the default model with the CLI first, or by a visitor's click")
    p.add_argument("--model-args", default="--preset default",
                   help="CLI train arguments for --model cli (the lab's default preset)")
    p.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                   help="no visitor through the pages before the class")
    p.add_argument("--seed", type=int, default=0, help="the drawings' seed")
    opts = p.parse_args(argv)
    if not 1 <= opts.visitors <= MAX_VISITORS:
        p.error(f"--visitors must be from 1 to {MAX_VISITORS}, got {opts.visitors}")
    if not 0 <= opts.train <= opts.visitors:
        p.error(f"--train must be from 0 to --visitors ({opts.visitors}), got {opts.train}")
    if opts.spread < 0 or opts.drawings < 0 or opts.time_limit <= 0:
        p.error("--spread and --drawings must be >= 0 and --time-limit > 0")
    if opts.share is not None and not 1 <= opts.share <= MAX_SHARE:
        p.error(f"--share must be from 1 to {MAX_SHARE}, got {opts.share}")
    if opts.share is not None and opts.url is not None:
        p.error("--share starts its own lab: give it or --url, not both")
    if opts.url is not None:
        try:
            opts.url = check_url(opts.url)
        except ValueError as e:
            p.error(str(e))
    return opts


def result_dict(r: loadlib.Result) -> dict:
    return {"name": r.name, "seconds": r.seconds, "failure": r.failure, "ws_bytes": r.ws_bytes,
            "media_bytes": r.media_bytes, "reruns": r.reruns, "alerts": r.alerts}


def main(argv=None) -> int:
    opts = parse_args(argv)
    server = None
    train_args = opts.model_args.split() if opts.model == "cli" else None
    if opts.share is not None:
        server = SharedLab(opts.share, train_args)
    elif opts.url is None:
        server = Server(train_args)
    url = opts.url or server.url
    if server is not None:
        processes = server.processes
    else:
        pid = listening_pid(urlsplit(url).port)
        processes = Processes([pid], root=pid) if pid else None
    harness0 = time.process_time()
    try:
        run = asyncio.run(run_class(url, processes, opts, warm_cookies=server.warm_cookies if server else ({},)))
    finally:
        if server is not None:
            server.stop()
    summary = summarise(run, opts.visitors)
    pids = processes.servers if processes else []
    report = {"config": {k: v for k, v in vars(opts).items()}, "url": url, "server_pids": pids,
              "complete": run["complete"], "seconds": run["seconds"],
              "harness_cpu_s": time.process_time() - harness0, **summary,
              "warmup": [result_dict(r) for r in run["warmup"]],
              "results": [{"step": rnd["step"], "visitor": i, "server": run["servers"][i], **result_dict(r)}
                          for rnd in run["rounds"] for i, r in zip(rnd["visitors"], rnd["results"])],
              "server_tracebacks": server.tracebacks() if server else None,
              "server_folder": str(server.folder) if server else None}
    if opts.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        lab = f"{opts.share} server(s) behind the proxy at " if opts.share else ""
        print(f"{opts.visitors} visitors, spread {opts.spread:g} s, train {opts.train}, {lab}{url} "
              f"(server pids {', '.join(map(str, pids)) or '?'}); {run['seconds']:.0f} s; "
              f"harness CPU {report['harness_cpu_s']:.1f} s")
        if run["warmup"]:
            print("warm-up visitor: " + ", ".join(f"{r.name} {r.seconds:.2f} s" + (" FAILED" if r.failure else "")
                                                  for r in run["warmup"]))
        print(table(summary))
        if not run["complete"]:
            print(f"STOPPED at --time-limit {opts.time_limit:g} s")
        if report["server_tracebacks"]:
            print(f"server logs: {len(report['server_tracebacks'])} traceback(s), in {server.folder}")
    ok = run["complete"] and not summary["failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
