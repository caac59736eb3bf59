"""Sweep: try many networks at once on the training cluster; a live table, what was tried against
test accuracy, accuracy against time; make the best one your model. ?sweep=ID opens a sweep
read-only for anyone."""

import streamlit as st

from mnistnet.sweep import SweepSpec, plan, varied
from ui import jobs, resources, runs, session, sweepview, views
from ui.plain import md

POLL_S = 2.0
KEY = "sweep.w."

views.page("sweep", "Sweep")
st.title("Sweep: train many networks at once")
n_train = len(views.data().train.labels)
store, owner = resources.store(), session.owner()
raw = st.query_params.get("sweep")
sweep = store.sweep(int(raw)) if raw and raw.isdigit() and len(raw) < 12 else None
if raw and sweep is None:
    st.error(f"There is no sweep #{raw} in this lab.")


def start(spec):
    try:
        st.query_params["sweep"] = str(jobs.start_sweep(spec, n_train))
    except jobs.JobError as e:
        st.session_state["sweep.error"] = str(e)


if sweep is None:
    st.caption("Each box takes one or more values, separated by commas; the sweep trains every "
               f"combination (a grid), or a random sample of them, up to {sweepview.MAX_RUNS} runs, on "
               "the lab's training workers. More runs than workers wait in the queue.")
    texts = {}
    cols = st.columns(4)
    for i, (name, (label, _, default)) in enumerate(sweepview.FIELDS.items()):
        texts[name] = cols[i % 4].text_input(label, value=default, key=KEY + name, max_chars=sweepview.MAX_CHARS)
    c1, c2, c3 = st.columns(3)
    schedules = c1.multiselect("Learning-rate schedules", ["constant", "cosine"], default=["constant"],
                               key=KEY + "schedules")
    mode = c2.radio("Search", ["grid", "random"], horizontal=True, key=KEY + "mode",
                    format_func={"grid": "every combination", "random": "a random sample"}.get)
    n = c2.number_input("Runs in the sample", value=8, step=1, key=KEY + "n", disabled=mode == "grid")
    size = c3.number_input("Training images", value=n_train, step=1000, key=KEY + "train_size")
    dataset = c3.selectbox("Data set", list(sweepview.DATASETS), key=KEY + "dataset",
                           format_func=lambda k: sweepview.DATASETS[k].title)
    spec, errors = sweepview.parse(texts, schedules, mode, int(n), int(size), n_train, dataset)
    for msg in errors.values():  # they quote what was typed: shown as text, never as Markdown
        st.error(md(msg), icon=":material/error:")
    if spec is not None:
        st.caption(f"{len(plan(spec, n_train))} runs.")
    st.button("Start the sweep", type="primary", key="sweep.start", disabled=spec is None, on_click=start,
              args=(spec,), icon=":material/play_arrow:")
    if msg := st.session_state.pop("sweep.error", None):
        st.error(md(msg))
    mine = [r for r in store.list_runs(owner=owner, limit=200) if r["sweep_id"]]
    if mine:
        st.subheader("Your sweeps")
        for sid in sorted({r["sweep_id"] for r in mine}, reverse=True)[:10]:
            st.markdown(f"- [Sweep #{sid}](?sweep={sid})")
    st.stop()

spec = SweepSpec.from_dict(sweep["spec"])
yours = sweep["owner"] == owner
st.subheader(f"Sweep #{sweep['id']}" + ("" if yours else " (someone else's: read-only)"))
st.caption(f"On {sweepview.DATASETS[spec.dataset].title}.")
st.caption(f"Share it: [this page with `?sweep={sweep['id']}`](?sweep={sweep['id']}) shows it to anyone in this lab.")
if st.button("New sweep", key="sweep.new", icon=":material/add:"):
    st.query_params.pop("sweep", None)
    st.rerun()


@st.fragment(run_every=POLL_S)
def live():
    rows = store.list_runs(sweep_id=sweep["id"])
    going = [r for r in rows if r["status"] in jobs.ACTIVE]
    done = len(rows) - len(going)
    st.progress(done / max(len(rows), 1), text=f"{done} of {len(rows)} runs ended"
                + (f"; {sum(r['status'] == 'queued' for r in going)} waiting for a worker" if going else ""))
    if yours and going and st.button("Stop the sweep", key="sweep.stop", icon=":material/stop:"):
        if msg := jobs.stop_sweep(sweep["id"]):
            st.error(msg)
    st.dataframe(sweepview.table_rows(rows), hide_index=True, width="stretch", key="sweep.table")
    if any(r["test_accuracy"] is not None for r in rows):
        c1, c2 = st.columns(2)
        plot = dict(width="stretch", config={"displayModeBar": False})
        c1.plotly_chart(sweepview.parallel_figure(rows, varied(spec)), key="sweep.parallel", **plot)
        c2.plotly_chart(sweepview.time_figure(rows), key="sweep.time", **plot)
    top = sweepview.best(rows)
    if top is not None:
        label = "Make the best run my current model" if yours else "Use a copy of the best run's model"
        if st.button(f"{label} (#{top['id']}, {100 * top['test_accuracy']:.2f}%)", key="sweep.best",
                     icon=":material/check_circle:"):
            if msg := runs.use_run(top["id"]):
                st.error(msg)
            else:
                st.success(f"Run #{top['id']}'s model is now your current model.")
    if not going:
        st.caption("Every run has ended.")


live()
