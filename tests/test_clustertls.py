"""Mutual TLS on a real scheduler and worker (child processes started as cluster.Embedded starts
them, plus clustertls's flags): a client with the cluster's certificate runs a task; a plain TCP
client, a TLS client without a certificate and one with another CA's are refused. The raw-socket
tests skip the client's check of the server, so only the server's check of the client counts.
"""

import ctypes
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client
from distributed.security import Security

from mnistnet.cluster import connect
from mnistnet.clustertls import make_credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _die_with_parent() -> None:  # as cluster.py's children: none outlives a pytest killed with -9
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _start(args: list[str], log_path: str) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:  # the child keeps its own copy
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """-> (the scheduler's address, the worker's address, the credentials)."""
    folder = str(tmp_path_factory.mktemp("tlscluster"))
    creds = make_credentials(os.path.join(folder, "tls"))
    sched_file = os.path.join(folder, "scheduler.json")
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", sched_file, *creds.scheduler_args()], f"{folder}/scheduler.log")]
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sched_file):
            assert procs[0].poll() is None and time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.05)
        time.sleep(0.05)  # written in one go; a moment for it to be complete
        address = json.loads(Path(sched_file).read_text())["address"]
        procs.append(_start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                             "--no-dashboard", "--name", "tls-0", "--death-timeout", "60",
                             *creds.worker_args()], f"{folder}/worker.log"))
        with Client(address, security=creds.security(), timeout=10, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=30)
            [worker] = client.scheduler_info()["workers"]
        yield address, worker, creds
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_files_are_private(cluster):
    creds = cluster[2]
    assert stat.S_IMODE(os.stat(creds.folder).st_mode) == 0o700
    for path in (creds.ca_file, creds.cert_file, creds.key_file):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_everything_listens_on_tls_localhost(cluster):
    address, worker, _ = cluster
    assert address.startswith("tls://127.0.0.1:") and worker.startswith("tls://127.0.0.1:")


def test_a_client_with_the_certificate_runs_a_task(cluster):
    address, _, creds = cluster
    with Client(address, security=creds.security(), timeout=10, set_as_default=False) as client:
        assert client.submit(lambda: 1 + 1, pure=False).result(timeout=10) == 2


# Dask itself will not open TLS without a certificate (it fails before it connects): the
# raw-socket test below shows the servers refuse such a client too. Through cluster.connect,
# which collects each failed Client at once (a half-built one, collected later inside another
# Client's start, deadlocked this module after test_cluster's).
@pytest.mark.parametrize("how", ["plain tcp", "tls without certificates", "another CA"])
def test_other_clients_are_refused(cluster, how):
    address, _, _ = cluster
    port = address.rsplit(":", 1)[1]
    target, security = {"plain tcp": (f"tcp://127.0.0.1:{port}", None),
                        "tls without certificates": (address, None),
                        "another CA": (address, Security.temporary())}[how]
    with pytest.raises(ConnectionError, match=f"could not connect to the training cluster at {target}"):
        connect(target, security, timeout=3).close()


def _raw_tls_exchange(address: str, cert_key: tuple[str, str] | None) -> bytes:
    """Open TLS to `address` without checking the server, present `cert_key` (or nothing), send a
    byte -> what the server sends back before it closes (b"" when it hangs up); raises
    ssl.SSLError when it rejects the handshake."""
    host, port = address[len("tls://"):].rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert_key:
        ctx.load_cert_chain(*cert_key)
    with socket.create_connection((host, int(port)), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        s.sendall(b"\0")  # TLS 1.3 tells the client it was refused only when it next reads
        return s.recv(1)


@pytest.mark.parametrize("who", ["scheduler", "worker"])
def test_the_servers_themselves_demand_the_certificate(cluster, who, tmp_path):
    address, worker, creds = cluster
    target = address if who == "scheduler" else worker
    # Control: with the cluster's certificate the server answers (Dask's handshake message).
    assert _raw_tls_exchange(target, (creds.cert_file, creds.key_file)) != b""
    other = make_credentials(str(tmp_path / "other"))
    for cert_key in (None, (other.cert_file, other.key_file)):
        try:
            assert _raw_tls_exchange(target, cert_key) == b""
        except (ssl.SSLError, ConnectionError):
            pass
