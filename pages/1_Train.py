"""Train: form -> TrainConfig -> a background training job; live progress and charts."""

import streamlit as st

from ui import forms, jobs, state, trainview, views

POLL_S = 1.0
CHART_POLL_S = 6.0

views.page("train", "Train")
st.title("Train a network")
views.no_animation()
n_train = len(state.data().train.labels)

jobs.attach(st.query_params.get("job"))  # a reload re-attaches to this session's run
finished = jobs.adopt_finished()  # a run that ended: its model is now the session's
if finished is not None:
    st.query_params.pop("job", None)
job = jobs.current()

values = trainview.form(n_train, disabled=job is not None)
hidden, config, errors = forms.validate(values, n_train)


def start():
    try:
        snap = jobs.start(hidden, config)
    except RuntimeError as e:
        st.session_state["train.start_error"] = str(e)
        return
    st.query_params["job"] = snap.id


st.button("Start training", type="primary", on_click=start, key="train.start",
          disabled=job is not None or bool(errors), icon=":material/play_arrow:")
if msg := st.session_state.pop("train.start_error", None):
    st.error(msg)
if errors:
    st.caption(f"Fix the {len(errors)} value(s) marked above to start.")

if job is not None:
    st.query_params["job"] = job.id  # back from another page: the URL shows the run again

    @st.fragment(run_every=POLL_S)
    def live_progress():
        snap = jobs.current()
        if snap is None or not snap.running:
            st.rerun(scope="app")  # the run ended: adopt its model, stop polling
        st.button("Stop", on_click=jobs.stop, args=(snap.id,), key="train.stop",
                  icon=":material/stop:")
        trainview.progress(snap)

    # Redrawing a chart costs Chromium far more than the server, and when the app runs
    # locally it takes that time from the training: the charts poll less often.
    @st.fragment(run_every=CHART_POLL_S)
    def live_charts():
        if (snap := jobs.current()) is not None:
            trainview.charts(snap)

    live_progress()
    live_charts()
elif (last := st.session_state.get(jobs.LAST_RUN_KEY)) is not None:
    st.subheader("Last run")
    if last.epochs:
        st.success("This run's model is now your current model: try it on the Analyze and "
                   "Draw pages.")
    trainview.run(last)
else:
    views.preload_charts()  # before Start: the live charts then draw at once
