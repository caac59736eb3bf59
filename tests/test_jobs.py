"""ui.jobs: a Train-page run trains in a process of its own and reports back to the server."""

import os
import signal
import time

from mnistnet import TrainConfig
from mnistnet.store import Store
from ui import jobs


def wait_ended(job, timeout=60):
    deadline = time.monotonic() + timeout
    while job.snapshot().running and time.monotonic() < deadline:
        time.sleep(0.05)
    snap = job.snapshot()
    assert not snap.running, "the job did not end in time"
    return snap


def test_a_job_trains_in_its_own_process_and_returns_its_model(tiny_mnist):
    job = jobs.Job((32,), TrainConfig(epochs=2, learning_rate=0.1, progress_every=5), tiny_mnist,
                   os.environ["MNISTNET_DB_URL"])
    job.start()
    assert job._process.pid != os.getpid()
    snap = wait_ended(job)
    assert snap.status == "finished" and snap.error is None
    assert [e["epoch"] for e in snap.epochs] == [1, 2]
    assert snap.batch_losses and snap.progress.samples_seen == 2 * len(tiny_mnist.train.labels)
    # the model came back whole: its history is the run's, and it predicts like it measured
    assert job.model.layer_sizes == (784, 32, 10)
    assert job.model.history.epochs[-1]["test"] == snap.epochs[-1]["test"]
    test = tiny_mnist.test
    correct = int((job.model.predict(test.images) == test.labels).sum())
    assert correct == snap.epochs[-1]["test"]["correct"]
    # and the run was recorded in the store by the process
    run = next(r for r in Store().list_runs() if r["id"] == job.run_id)
    assert run["status"] == "finished" and run["origin"] == "app"


def test_a_killed_training_process_is_a_failed_run_with_a_message(tiny_mnist):
    job = jobs.Job((32,), TrainConfig(epochs=50, learning_rate=0.1), tiny_mnist,
                   os.environ["MNISTNET_DB_URL"])
    job.start()
    deadline = time.monotonic() + 30
    while job.snapshot().progress is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(job._process.pid, signal.SIGKILL)
    snap = wait_ended(job)
    assert snap.status == "failed"
    assert "ended unexpectedly" in snap.error and str(-signal.SIGKILL) in snap.error
    assert job.model is None
