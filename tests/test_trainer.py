"""The app's training cluster holder (ui.resources.Trainer): a start that failed is tried again
at the next training, on a real embedded cluster."""

import time

import pytest

from mnistnet import cluster as cluster_module
from mnistnet.store import Store
from ui.resources import Trainer


def test_a_failed_cluster_start_is_tried_again(monkeypatch, tmp_path):
    monkeypatch.delenv("MNISTNET_SCHEDULER", raising=False)
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    real, calls = cluster_module.Cluster.from_env, []

    def first_fails(s):
        calls.append(s)
        if len(calls) == 1:
            raise OSError("address already in use")  # as a port taken at the wrong moment would
        return real(s)

    monkeypatch.setattr(cluster_module.Cluster, "from_env", staticmethod(first_fails))
    trainer = Trainer(store)
    with pytest.raises(RuntimeError, match="could not start .*try again"):
        trainer.get(timeout=30)
    cluster = trainer.get(timeout=120)  # the next Start: a new attempt, which works
    try:
        assert len(calls) == 2 and cluster is trainer.cluster and trainer.error is None
        deadline = time.monotonic() + 60
        while cluster.workers() < 1:
            assert time.monotonic() < deadline, "the retried cluster has no workers"
            time.sleep(0.1)
        assert trainer.get(timeout=1) is cluster  # started once: later calls share it
    finally:
        trainer.cluster = None  # ends the watchdog loop
        time.sleep(1.5)
        cluster.close()
