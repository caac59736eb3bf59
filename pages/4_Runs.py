"""Runs: yours and everyone's (read-only); overlay curves; use, download, share; rename, stop and
delete your own; upload a model."""

import streamlit as st

from mnistnet.store import StoreError
from ui import jobs, resources, runfigures, runs, session, views
from ui.plain import md

views.page("runs", "Runs")
st.title("Runs")
st.caption("Every training run in this lab, as it was recorded epoch by epoch. Select runs to compare "
           "their curves. Yours you can rename, stop and delete; everyone's you can look at and reuse.")
store, owner = resources.store(), session.owner()
linked = runs.linked_run()
if msg := st.session_state.pop("runs.message", None):
    st.success(msg)
runs.upload_message("runs.upload")

mine_tab, all_tab = st.tabs(["Mine", "Everyone's"])
with mine_tab:
    mine = store.list_runs(owner=owner)
    if not mine:
        st.info("No runs of yours yet: train one on the Train page, or upload a model below.")
    ev_mine = st.dataframe(runs.table_rows(mine), on_select="rerun", selection_mode="multi-row",
                           hide_index=True, key="runs.mine", width="stretch") if mine else None
with all_tab:
    others = store.list_runs(not_owner=owner, limit=500)
    if not others:
        st.info("No one else has a run in this lab yet.")
    ev_all = st.dataframe(runs.table_rows(others), on_select="rerun", selection_mode="multi-row",
                          hide_index=True, key="runs.all", width="stretch") if others else None

chosen = ([mine[i] for i in ev_mine.selection.rows] if ev_mine else []) + \
         ([others[i] for i in ev_all.selection.rows] if ev_all else [])
if not chosen and linked is not None:  # a shared link: that run, read-only unless it is yours
    row = store.run(linked)
    if row is None:
        st.error(f"There is no run #{linked} in this lab.")
    else:
        chosen = [row]

if chosen:
    curves = [(runs.run_label(r), store.run_epochs(r["id"])) for r in chosen]
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
    yours = run["owner"] == owner
    st.subheader(f"Run #{run['id']}" + (f" “{md(run['name'])}”" if run["name"] else "")
                 + ("" if yours else " (someone else's: read-only)"))
    said = f" {md(run['error'][:1].upper() + run['error'][1:])}." if run["error"] else ""
    st.caption(f"Status: {run['status']}.{said}")
    a, b, c = st.columns(3)
    if run["model_id"] is not None:
        if a.button("Use this model for Analyze and Draw", icon=":material/check_circle:", key="runs.use"):
            if msg := runs.use_run(run["id"]):
                st.error(msg)
            else:
                st.success(f"A copy of run #{run['id']}'s model is now your current model.")
        model_id = run["model_id"]
        b.download_button("Download its model (.npz)", data=lambda: store.model_blob(model_id),
                          file_name=f"mnistnet-run-{run['id']}.npz", mime="application/octet-stream",
                          icon=":material/download:", key="runs.download")
    if yours and run["status"] in ("queued", "running"):
        if c.button("Stop this run", icon=":material/stop:", key="runs.stop"):
            if msg := jobs.stop(run["id"]):
                st.error(msg)
            else:
                st.rerun()
    elif yours:
        with c.popover("Rename or delete", icon=":material/edit:"):
            name = st.text_input("Name", value=run["name"] or "", max_chars=80, key=f"runs.name.{run['id']}")
            if st.button("Rename", key="runs.rename"):
                store.rename_run(run["id"], owner, name)
                st.rerun()
            st.write(f"Delete run #{run['id']}, its epochs and its model? This cannot be undone.")
            if st.button("Delete", type="primary", key="runs.delete"):
                try:
                    store.delete_run(run["id"], owner)
                except StoreError as e:
                    st.error(md(e))
                else:
                    st.query_params.pop(runs.RUN_PARAM, None)
                    st.session_state["runs.message"] = f"Run #{run['id']} was deleted."
                    st.rerun()
    st.markdown(f"Share this run: [this page with `?run={run['id']}`](?run={run['id']}) opens its curves "
                "for anyone in this lab, read-only; they can use a copy of its model.")

st.subheader("Upload a model")
runs.model_upload("runs.upload")
