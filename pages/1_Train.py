"""Train: form -> TrainConfig -> a run queued on the training cluster; live progress and charts
read from the store, so a reload, another page or a new tab finds the run again."""

import streamlit as st

from ui import forms, jobs, session, trainview, views

POLL_S = 1.0
CHART_POLL_S = 6.0

views.page("train", "Train")
st.title("Train a network")
views.no_animation()
n_train = len(views.data().train.labels)
owner = session.owner()
active = jobs.my_active(owner)
run_id = active[0]["id"] if active else None
if run_id is not None:
    trainview.show_run(active[0], n_train)

values = trainview.form(n_train, disabled=run_id is not None)
hidden, config, errors = forms.validate(values, n_train)


def start():
    # What the widgets hold now, not what this run of the page saw: a value typed just before
    # the click may not have reached this run yet.
    now_hidden, now_config, now_errors = forms.validate(trainview.values_now(), n_train)
    if now_errors:
        st.session_state["train.start_error"] = "Fix the values marked above to start."
        return
    try:
        jobs.start(now_hidden, now_config)
    except jobs.JobError as e:
        st.session_state["train.start_error"] = str(e)


st.button("Start training", type="primary", on_click=start, key="train.start",
          disabled=run_id is not None or bool(errors), icon=":material/play_arrow:")
if msg := st.session_state.pop("train.start_error", None):
    st.error(msg)
if "size" in errors:
    st.error(errors["size"], icon=":material/error:")
elif errors:
    st.caption(f"Fix the {len(errors)} value(s) marked above to start.")

if run_id is not None:
    @st.fragment(run_every=POLL_S)
    def live_progress():
        snap = jobs.snapshot(run_id)
        if snap is None or not snap.running:
            st.rerun(scope="app")  # the run ended: show it as the last run, stop polling
        if msg := st.session_state.pop("train.stop_error", None):
            st.error(msg)
        st.button("Stop", on_click=_stop, args=(snap.id,), key="train.stop", icon=":material/stop:",
                  disabled=snap.status == "stopping")
        trainview.progress(snap)

    def _stop(rid):
        if msg := jobs.stop(rid):
            st.session_state["train.stop_error"] = msg

    # Redrawing a chart costs Chromium far more than the server, and when the app runs
    # locally it takes that time from the training: the charts poll less often.
    @st.fragment(run_every=CHART_POLL_S)
    def live_charts():
        if (snap := jobs.snapshot(run_id)) is not None:
            trainview.charts(snap)

    live_progress()
    live_charts()
elif (last := jobs.latest(owner)) is not None and (snap := jobs.snapshot(last["id"])) is not None:
    st.subheader(f"Your last run (#{snap.id})")
    if snap.note:
        (st.success if "is now your current" in snap.note else st.info)(snap.note)
    trainview.run(snap)
    if not snap.epochs:  # no charts shown: load Plotly now, for the next run's
        views.preload_charts()
else:
    views.preload_charts()  # before Start: the live charts then draw at once
