"""The Runs page's pieces: labels and table rows of runs, and using a run's model.

Imports streamlit, mnistnet and the ui layers below (resources, session). A run link
(?run=ID) opens a run read-only for anyone; "Use this model" makes a copy of its model (with
its weight snapshots) the visitor's current one, so the run's owner deleting it later takes
nothing from them. A download (store.model_blob) is the model file with its snapshots.
"""

from __future__ import annotations

import time

import streamlit as st

from mnistnet.data import DATASETS
from mnistnet.modelfile import MAX_FILE_BYTES
from mnistnet.store import StoreError
from mnistnet.uploads import UploadError, import_model_upload
from ui import resources, session
from ui.plain import md

RUN_PARAM = "run"


def run_label(row: dict) -> str:
    """'#12 784-512-256-10, 97.31%' for lists and legends (with the owner's name for it).
    Plain text: escape it for where it goes (ui.plain.md for Markdown, html for Plotly)."""
    acc = f", {100 * row['test_accuracy']:.2f}%" if row.get("test_accuracy") is not None else ""
    name = f" “{row['name']}”" if row.get("name") else ""
    return f"#{row['id']}{name} {'-'.join(map(str, row['layer_sizes']))}{acc}"


def table_rows(rows: list[dict]) -> list[dict]:
    """Store run rows -> the Runs page's table (plain values, one row per run)."""
    out = []
    for r in rows:
        cfg = r["config"]
        begun = r["running_at"] or r["started_at"]
        seconds = (r["ended_at"] or time.time()) - begun if r["status"] != "queued" else 0.0
        out.append({
            "run": r["id"], "name": r["name"] or "", "status": r["status"], "from": r["origin"],
            "layers": "-".join(map(str, r["layer_sizes"])),
            "test accuracy": (f"{100 * r['test_accuracy']:.2f}% ({r['test_correct']:,} / {r['test_total']:,})"
                              if r["test_total"] else "-"),
            "epochs": r["epochs"], "lr": cfg.get("learning_rate"), "batch": cfg.get("batch_size"),
            "seconds": round(seconds, 1),
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"])),
        })
    return out


def use_run(run_id: int) -> str | None:
    """Make a copy of run `run_id`'s model the visitor's current model; a sentence on failure."""
    store = resources.store()
    row = store.run(run_id)
    if row is None:
        return f"There is no run #{run_id} in this lab."
    if row["model_id"] is None:
        return f"Run #{run_id} has no model (it {row['status']} before its first epoch ended)."
    try:
        copy = store.copy_model(row["model_id"], session.owner(), f"copy of run {run_id}")
    except StoreError as e:
        return f"Run #{run_id}'s model could not be used: {e}."
    session.set_current(copy, f"run #{run_id} ({run_label(row)}), from the Runs page", row["test_accuracy"])
    return None


def linked_run() -> int | None:
    """The run id in the URL (?run=ID), if it is a number."""
    raw = st.query_params.get(RUN_PARAM)
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 12 else None


MAX_MODEL_MB = MAX_FILE_BYTES // 2**20  # the largest model the Train form allows is about 57 MB


def model_upload(key: str) -> None:
    """A model file uploader: the file is checked (headers first, never unpickled), its test
    accuracy measured here, and stored as a run of the visitor's; its model becomes current."""
    upload = st.file_uploader(f"Load a model file saved by mnistnet (.npz, up to {MAX_MODEL_MB} MB)",
                              type=["npz"], key=key, max_upload_size=MAX_MODEL_MB)
    if upload is None or st.session_state.get(f"{key}.done") == upload.file_id:
        return
    if upload.size > MAX_FILE_BYTES:
        st.error(f"{md(upload.name)} is {upload.size / 1e6:.0f} MB; a model file is at most {MAX_MODEL_MB} MB.")
        return
    try:
        got = import_model_upload(resources.store(), upload.getvalue(), upload.name, session.owner(),
                                  lambda name: session.data().test if name == "mnist" else resources.dataset(name).test)
    except UploadError as e:
        st.error(md(e))  # it names the file
        return
    st.session_state[f"{key}.done"] = upload.file_id
    acc = got.measured_test["accuracy"] if got.measured_test else None
    session.set_current(got.model_id, f"the file {upload.name}, uploaded", acc)
    claim = (f" (the file claimed {100 * got.claimed_test_accuracy:.2f}%)"
             if got.claimed_test_accuracy is not None and acc is not None
             and abs(got.claimed_test_accuracy - acc) > 5e-5 else "")
    st.session_state[f"{key}.message"] = (
        f"{md(upload.name)} is now your current model (run #{got.run_id})"
        + (f": {100 * acc:.2f}% on the {DATASETS[got.dataset].title} test set, measured here{claim}."
           if acc is not None else "."))
    st.rerun()


def upload_message(key: str) -> None:
    if msg := st.session_state.pop(f"{key}.message", None):
        st.success(msg)
