"""The process a Train-page job trains in.

Imports threadpoolctl and mnistnet, never Streamlit. Training in a thread of the Streamlit
server was 1.2-1.3x slower than the CLI with the Train page open: the training thread spent
15-20% of its time waiting for the GIL, held by server threads that Chromium's drawing kept
off the other core. In a process of its own nothing in the server can pause it.

The job (ui.jobs) sends `train_job` its arguments, reads ("progress", Progress) messages from
`conn` until the last one, ("done", status, error, run_id, model_id, model file bytes or None),
and sets `stop` to end the run after the current batch.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from mnistnet import MLP, TrainConfig, TrainingDiverged
from mnistnet.modelfile import model_bytes
from mnistnet.runs import train_recorded
from mnistnet.store import Store


def train_job(db_url: str, hidden: tuple[int, ...], config: dict, data, conn, stop) -> None:
    """Train (784, *hidden, 10) on `data` (an MNIST) with TrainConfig.from_dict(config),
    recording the run in the store at `db_url`; report through `conn` (a Connection)."""
    threadpool_limits(limits=1, user_api="blas")  # one BLAS thread per training job
    status, error, run_id, model_id, blob = "failed", None, None, None, None
    model = None
    try:
        cfg = TrainConfig.from_dict(config)
        model = MLP((784, *hidden, 10), seed=cfg.seed)
        run = train_recorded(Store(db_url), model, data, cfg, "app",
                             on_progress=lambda p: conn.send(("progress", p)), should_stop=stop.is_set)
        status, run_id, model_id = run.history.status, run.run_id, run.model_id
    except TrainingDiverged as e:  # the model keeps its last finite weights
        error = str(e)
    except Exception as e:  # said on the page: the process must never die silently
        error = f"{type(e).__name__}: {e}"
    if model is not None and model.history is not None and model.history.epochs:
        blob = model_bytes(model)
    try:
        conn.send(("done", status, error, run_id, model_id, blob))
    finally:
        conn.close()
