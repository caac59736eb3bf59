"""The store as the pages see it: one `mnistnet.store.Store` per server process, and the
run links (?run=ID) that make a run's model the session's current one.

Imports streamlit, mnistnet and ui.state. Tests point MNISTNET_DB_URL at a file of their own.
"""

from __future__ import annotations

import time

import streamlit as st

from mnistnet.store import Store
from ui import state

RUN_PARAM = "run"
ADOPTED_KEY = "db.adopted_run"  # the run id whose model this session took from a link


@st.cache_resource(show_spinner=False)
def store() -> Store:
    """The server's store (SQLite in the user data folder unless MNISTNET_DB_URL says otherwise)."""
    return Store()


def run_label(row: dict) -> str:
    """'#12 784-512-256-10, 97.31%' for lists and legends."""
    acc = f", {100 * row['test_accuracy']:.2f}%" if row.get("test_accuracy") is not None else ""
    return f"#{row['id']} {'-'.join(map(str, row['layer_sizes']))}{acc}"


def table_rows(rows: list[dict]) -> list[dict]:
    """Store run rows -> the Runs page's table (plain values, one row per run)."""
    out = []
    for r in rows:
        cfg = r["config"]
        seconds = (r["ended_at"] or time.time()) - r["started_at"]
        out.append({
            "run": r["id"], "status": r["status"], "from": r["origin"],
            "layers": "-".join(map(str, r["layer_sizes"])),
            "test accuracy": (f"{100 * r['test_accuracy']:.2f}% ({r['test_correct']:,} / {r['test_total']:,})"
                              if r["test_total"] else "-"),
            "epochs": r["epochs"], "lr": cfg.get("learning_rate"), "batch": cfg.get("batch_size"),
            "seconds": round(seconds, 1),
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"])),
        })
    return out


def adopt_run(run_id: int) -> str | None:
    """Make run `run_id`'s model the session's current model; an error message or None."""
    rows = {r["id"]: r for r in store().list_runs()}
    row = rows.get(run_id)
    if row is None:
        return f"There is no run #{run_id} on this server."
    if row["model_id"] is None:
        return f"Run #{run_id} has no model (it {row['status']} before its first epoch ended)."
    model = store().load_model(row["model_id"])
    state.set_current(model, f"run #{run_id} ({run_label(row)}), from the run history", row["model_id"])
    st.session_state[ADOPTED_KEY] = run_id
    return None


def adopt_run_from_url() -> str | None:
    """A link with ?run=ID gives this session that run's model (once per id)."""
    raw = st.query_params.get(RUN_PARAM)
    if raw is None:
        return None
    try:
        run_id = int(raw)
    except ValueError:
        return f"'{raw}' is not a run number."
    if st.session_state.get(ADOPTED_KEY) == run_id:
        return None
    return adopt_run(run_id)
