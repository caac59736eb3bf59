"""Runs: every recorded run; overlay curves; use, download, share, delete; upload a model."""

import streamlit as st

from mnistnet.uploads import UploadError, import_model_upload
from ui import db, runfigures, views

views.page("runs", "Runs")
st.title("Runs")
st.caption("Every training run, from this app and from `python -m mnistnet train`, as it was recorded "
           "epoch by epoch. Select runs to compare their curves.")

rows = db.store().list_runs()
if not rows:
    st.info("No runs yet: train one on the Train page, or upload a model below.")
else:
    linked = st.query_params.get(db.RUN_PARAM)
    preselect = [i for i, r in enumerate(rows) if str(r["id"]) == linked]
    event = st.dataframe(db.table_rows(rows), on_select="rerun", selection_mode="multi-row", hide_index=True,
                         key="runs.table", width="stretch")
    chosen = [rows[i] for i in (event.selection.rows or preselect)]
    if chosen:
        curves = [(db.run_label(r), db.store().run_epochs(r["id"])) for r in chosen]
        curves = [(label, eps) for label, eps in curves if eps]
        if curves:
            c1, c2 = st.columns(2)
            c1.plotly_chart(runfigures.overlay_figure(curves, "test", "loss", "Test loss", "mean loss"),
                            width="stretch", key="runs.loss")
            c2.plotly_chart(runfigures.overlay_figure(curves, "test", "accuracy", "Test accuracy", "accuracy"),
                            width="stretch", key="runs.acc")
            split = st.radio("Errors per digit on", ["test", "train"], horizontal=True, key="runs.split",
                             format_func=lambda s: {"test": "the test set", "train": "the training set"}[s])
            st.plotly_chart(runfigures.digit_errors_overlay(curves, split), width="stretch", key="runs.digits")
        else:
            st.info("The selected runs have no finished epoch yet.")
    if len(chosen) == 1:
        run = chosen[0]
        st.subheader(f"Run #{run['id']}")
        if run["error"]:
            st.caption(run["error"])
        a, b, c = st.columns(3)
        if run["model_id"] is not None:
            if a.button("Use this model for Analyze and Draw", icon=":material/check_circle:", key="runs.use"):
                st.query_params[db.RUN_PARAM] = str(run["id"])
                st.session_state.pop(db.ADOPTED_KEY, None)
                if msg := db.adopt_run(run["id"]):
                    st.error(msg)
                else:
                    st.success(f"Run #{run['id']}'s model is now your current model.")
            model_id = run["model_id"]
            b.download_button("Download its model (.npz)", data=lambda: db.store().model_blob(model_id),
                              file_name=f"mnistnet-run-{run['id']}.npz", mime="application/octet-stream",
                              icon=":material/download:", key="runs.download")
        with c.popover("Delete this run", icon=":material/delete:"):
            st.write(f"Delete run #{run['id']}, its epochs and its model? This cannot be undone.")
            if st.button("Delete", type="primary", key="runs.delete"):
                db.store().delete_run(run["id"])
                st.query_params.pop(db.RUN_PARAM, None)
                st.rerun()
        st.markdown(f"Share this run: [this page with `?run={run['id']}`](?run={run['id']}) opens its "
                    "curves, and makes its model the current one for Analyze and Draw, for whoever "
                    "follows the link on this server.")

st.subheader("Upload a model")
upload = st.file_uploader("A .npz saved by mnistnet (the app or `python -m mnistnet train --out`)",
                          type=["npz"], key="runs.upload")
if upload is not None and st.session_state.get("runs.uploaded") != upload.file_id:
    try:
        run_id, _ = import_model_upload(db.store(), upload.getvalue(), upload.name)
    except UploadError as e:
        st.error(str(e))
    else:
        st.session_state["runs.uploaded"] = upload.file_id
        db.adopt_run(run_id)
        st.query_params[db.RUN_PARAM] = str(run_id)
        st.rerun()
