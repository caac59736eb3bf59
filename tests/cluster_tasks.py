"""Tasks the cluster tests submit besides mnistnet's own. Importable by the embedded cluster's
workers: test_cluster.py puts this folder on their PYTHONPATH."""

import os
import socket
import time

from distributed import get_worker

from mnistnet.store import Store


def stubborn(db_url: str, run_id: int) -> None:
    """Claim the run and never read its stop flag (a hung or buggy worker). A run it cannot
    claim (Dask running the task again after its worker was killed) it leaves alone."""
    if not Store(db_url).claim_run(run_id, get_worker().address, socket.gethostname(), os.getpid()):
        return
    while True:
        time.sleep(0.05)
