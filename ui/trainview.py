"""The Train page's two views: the form (values persist across page switches) and a run's
progress and charts.

Imports streamlit and ui. Widgets forget their values when their page is left, so the form
keeps its values in FORM_KEY and seeds the widgets from there when the page mounts again.
"""

from __future__ import annotations

import streamlit as st

from mnistnet import TrainConfig
from ui import figcache, forms, jobs

FORM_KEY = "train.form"
W = "train.w."  # prefix of the form's widget keys
DEFAULT_HIDDEN_SIZE = 64


def _load_values(values: dict) -> None:
    """Put form values into the widgets' session keys."""
    st.session_state[W + "layers"] = len(values["hidden"])
    st.session_state[W + "net"] = values.get("net") or ""
    for i, size in enumerate(values["hidden"]):
        st.session_state[f"{W}hidden.{i}"] = size
    for f in forms.CONFIG_FIELDS:
        # float(): a number input's value and step must be of one type (a preset may say 10).
        st.session_state[W + f] = (str(values[f]) if f == "seed" else float(values[f]) if f in AUGMENTATION
                                   else values.get(f, "mnist") if f == "dataset"
                                   else bool(values.get(f, False)) if f == "flip" else values[f])


def _apply_preset(n_train: int) -> None:
    """Fill the form with the chosen preset's recipe for the data set the form holds."""
    name = st.session_state[W + "preset"]
    if name:
        _load_values(forms.preset_values(name, n_train, st.session_state.get(W + "dataset") or "mnist"))
        st.session_state[W + "preset.loaded"] = values_now()


def _change_dataset(n_train: int) -> None:
    """A new data set: a preset loaded and left as it was switches to its recipe for that data
    set (clothes are mirrored, digits turned); values the visitor changed stay."""
    loaded = st.session_state.get(W + "preset.loaded")
    now = values_now()
    if st.session_state.get(W + "preset") and loaded and {**loaded, "dataset": now["dataset"]} == now:
        _apply_preset(n_train)


def _number(label: str, field: str, n_train: int, disabled: bool, where=st, **kw):
    """A number input for TrainConfig field `field`, its error (if any) right below it."""
    # No min_value / max_value: a value outside them stays in the box, red, but never reaches
    # Python, which would go on with the previous one. Every value is checked here instead.
    value = where.number_input(label, key=W + field, disabled=disabled, **kw)
    if msg := forms.field_error(field, value, n_train):
        where.error(msg, icon=":material/error:")
    return value


def show_run(run: dict, n_train: int) -> None:
    """Put a running run's values into the (disabled) form: it shows what is training, in every
    tab, whatever the widgets held before."""
    # Runs recorded before a field existed lack it: the form shows its default.
    cfg = {**TrainConfig().to_dict(), **run["config"], "train_size": run["config"].get("train_size") or n_train}
    net = run["spec"].get("net") or ""
    _load_values({"hidden": [128] if net else list(run["layer_sizes"][1:-1]), "net": net,
                  **{f: cfg[f] for f in forms.CONFIG_FIELDS}})


def values_now() -> dict:
    """The form's values as the widgets hold them at this moment: what a callback (Start) must
    use, since the values the page last drew may be a rerun behind what the visitor typed."""
    ss = st.session_state
    layers = int(ss.get(W + "layers") or 1)
    return {"hidden": [ss.get(f"{W}hidden.{i}", DEFAULT_HIDDEN_SIZE) for i in range(layers)],
            "net": ss.get(W + "net") or "", **{f: ss.get(W + f) for f in forms.CONFIG_FIELDS}}


def form(n_train: int, disabled: bool) -> dict:
    """Draw the form; return its values (validate them with forms.validate)."""
    if W + "layers" not in st.session_state:  # first visit, or back from another page
        saved = st.session_state.get(FORM_KEY) or {**forms.preset_values("seed", n_train),
                                                   "preset": "seed"}
        _load_values(saved)
        st.session_state[W + "preset"] = saved["preset"]
        st.session_state[W + "preset.loaded"] = saved.get("preset.loaded", values_now())
    chosen = st.segmented_control("Start from a preset", list(forms.PRESET_LABELS),
                                  format_func=forms.PRESET_LABELS.get, key=W + "preset",
                                  on_change=_apply_preset, args=(n_train,), disabled=disabled)
    if chosen:
        st.caption(forms.preset_summary(chosen, st.session_state.get(W + "dataset") or "mnist"))
    values: dict = {"hidden": []}
    arch, hyper = st.columns(2, gap="large")
    with arch:
        values["net"] = st.text_input(
            "Network in one line (optional)", key=W + "net", disabled=disabled, max_chars=400,
            placeholder="conv 16x5 - pool - conv 32x5 - pool - dense 128",
            help="Layers joined by '-': 'conv FxK' (F filters of KxK, add 'same' to pad), 'pool' (2x2 "
                 "max pooling), 'dense N', 'dropout P'; 'tanh' after a conv or dense layer instead of "
                 "ReLU. The 10 outputs are added. Empty: the dense ReLU layers below.")
        if msg := forms.net_error(values["net"]):
            st.error(msg, icon=":material/error:")
        line = bool(str(values["net"]).strip())
        st.markdown("**Architecture**: " + ("the line above, then 10 outputs" if line else
                                            "784 inputs → hidden ReLU layers → 10 outputs"))
        layers = st.segmented_control("Hidden layers", list(range(1, forms.MAX_HIDDEN_LAYERS + 1)),
                                      key=W + "layers", disabled=disabled or line) or 1
        for i in range(int(layers)):
            key = f"{W}hidden.{i}"
            if key not in st.session_state:
                st.session_state[key] = DEFAULT_HIDDEN_SIZE
            size = st.number_input(f"Size of hidden layer {i + 1}", step=16, key=key, disabled=disabled or line)
            if not line and (msg := forms.hidden_error(size)):
                st.error(msg, icon=":material/error:")
            values["hidden"].append(size)
    with hyper:
        st.markdown("**Hyperparameters**: mini-batch SGD")
        if W + "dataset" not in st.session_state:
            st.session_state[W + "dataset"] = "mnist"
        values["dataset"] = st.selectbox("Data set", list(forms.DATASETS), key=W + "dataset",
                                         format_func=lambda k: forms.DATASETS[k].title, disabled=disabled,
                                         on_change=_change_dataset, args=(n_train,),
                                         help="MNIST: handwritten digits. Fashion-MNIST: photos of 10 "
                                              "kinds of clothing, the same size and format, harder.")
        values["learning_rate"] = _number("Learning rate", "learning_rate", n_train, disabled,
                                          step=0.01, format="%g")
        values["batch_size"] = _number("Batch size", "batch_size", n_train, disabled, step=1)
        values["epochs"] = _number("Epochs", "epochs", n_train, disabled, step=1)
        # A text box: a number input cannot hold (or refuse) a seed beyond JavaScript's integers.
        values["seed"] = st.text_input("Seed", key=W + "seed", disabled=disabled,
                                       help=f"A whole number from 0 to {forms.MAX_SEED:,}: the same seed, "
                                       "the same run in this lab. (The CLI on more BLAS threads adds "
                                       "the same products in another order, so its model differs "
                                       "slightly: seed 0 of the seed preset lands 0.1-0.2 points apart.)")
        if msg := forms.field_error("seed", values["seed"], n_train):
            st.error(msg, icon=":material/error:")
        values["train_size"] = _number(
            "Training images", "train_size", n_train, disabled, step=1000,
            help=f"Train on the first n of the {n_train:,} training images (fewer: a quicker run).")
    with st.expander("More: momentum, learning-rate decay, weight decay, augmentation"):
        c1, c2, c3, c4 = st.columns(4)
        values["momentum"] = _number("Momentum", "momentum", n_train, disabled, c1, step=0.1,
                                     format="%.2f")
        values["lr_schedule"] = c2.selectbox("Learning-rate schedule", ["constant", "cosine"],
                                             key=W + "lr_schedule", disabled=disabled)
        values["weight_decay"] = _number("Weight decay (L2)", "weight_decay", n_train, disabled,
                                         c3, step=0.0001, format="%g")
        values["shift_pixels"] = _number("Random shifts (px)", "shift_pixels", n_train, disabled,
                                         c4, step=1)
        _augmentation(values, n_train, disabled)
    st.session_state[FORM_KEY] = {**values, "preset": st.session_state.get(W + "preset"),
                                  "preset.loaded": st.session_state.get(W + "preset.loaded")}
    return values


# field -> (label, step, help): each training image is distorted anew every time it is drawn.
AUGMENTATION = {
    "rotate_degrees": ("Rotate up to (degrees)", 1.0, "Turn each image by a random angle up to this, "
                       "either way. 10 to 15 helps with digits drawn at a tilt."),
    "scale": ("Resize by up to (fraction)", 0.05, "Make each image larger or smaller by a random "
              "factor within 1 plus or minus this: 0.15 is 85% to 115%."),
    "shear_degrees": ("Slant up to (degrees)", 1.0, "Lean each image left or right by a random angle "
                      "up to this, as handwriting slants."),
    "translate_pixels": ("Move up to (px)", 0.5, "Move each image by up to this many pixels in each "
                         "direction, in fractions of a pixel."),
    "thickness": ("Thicker or thinner strokes (0 to 1)", 0.1, "Make each digit's strokes fatter or "
                  "thinner by a random amount up to this: 1 is a pixel's width, as with another pen."),
    "elastic_alpha": ("Elastic distortion (px)", 1.0, "Bend each image with a smooth random "
                      "displacement of this strength, like a shaky hand (Simard et al. 2003 use 34)."),
    "elastic_sigma": ("Elastic smoothness (px)", 0.5, "How smooth the bending is: the larger, the "
                      "gentler and wider the waves (Simard et al. 2003 use 4)."),
}


def _augmentation(values: dict, n_train: int, disabled: bool) -> None:
    """The augmentation inputs, four to a row; 0 turns each off."""
    # Costs from bench/augment.py on one core of the lab's machine.
    st.caption("Augmentation: every training image is distorted anew each time it is used, so "
               "the network learns digits as people draw them (or clothes seen either way round). "
               "All of it together costs about 3 ms per batch of 128 images, half a training step "
               "of a 784-512-256-10 network.")
    names = list(AUGMENTATION)
    for row in (names[:4], names[4:]):
        cols = st.columns(4)
        for col, f in zip(cols, row):
            label, step, help_text = AUGMENTATION[f]
            values[f] = _number(label, f, n_train, disabled, col, step=step, format="%g", help=help_text)
    values["flip"] = cols[3].checkbox(
        "Mirror left to right", key=W + "flip", disabled=disabled,
        help="Mirror a random half of the images each time: right for clothes, which look the same "
             "either way round; wrong for digits, which do not.")


def _status_line(snap: jobs.Snapshot) -> str:
    p = snap.progress
    if snap.status == "queued":
        ahead = (f"{snap.ahead} run{'s' if snap.ahead != 1 else ''} ahead of you" if snap.ahead
                 else "next to start")
        return f"Queued, {ahead}: every training worker is busy"
    if snap.status == "finished" and snap.epochs:
        t = snap.epochs[-1]["test"]
        secs = (snap.ended or snap.started) - snap.started
        return (f"Finished in {secs:.1f} s: test accuracy {100 * t['accuracy']:.2f}% "
                f"({t['correct']:,} / {t['total']:,})")
    where = f"epoch {p.epoch}/{p.epochs}, batch {p.batch:,}/{p.batches:,}" if p else "before its first batch"
    if snap.status == "cancelled":
        return "Cancelled before it started"
    if snap.status == "stopped":
        return f"Stopped at {where}" + ("; the model keeps what it learned" if snap.epochs else "")
    if snap.status == "failed":
        return f"Failed at {where}"
    if snap.status == "interrupted":
        return f"Interrupted at {where}"
    if p is None:
        return "Starting..."
    if snap.status == "stopping":
        return f"Stopping at {where}..."
    left = snap.seconds_left
    eta = f", about {left:.0f} s left" if left is not None else ""
    return f"Training: {where}, {p.samples_per_s:,.0f} samples/s{eta}"


def progress(snap: jobs.Snapshot) -> None:
    """Progress bar, status line and what is being trained."""
    st.progress(snap.fraction, text=_status_line(snap))
    if snap.error:
        said = st.warning if snap.status in ("stopped", "interrupted", "cancelled") else st.error
        said(snap.error[:1].upper() + snap.error[1:])
    cfg = snap.config
    data = forms.DATASETS[cfg.get("dataset", "mnist")].title
    st.caption(f"Network {snap.network} on {data}; learning rate {cfg['learning_rate']}, batch {cfg['batch_size']}, "
               f"{cfg['epochs']} epoch(s) on {snap.n_train:,} images, seed {cfg['seed']}.")
    if snap.epochs and not snap.running:
        st.caption("Epoch seconds: " + ", ".join(f"{e['seconds']:.2f}" for e in snap.epochs)
                   + " (training plus measuring the three sets)")


def _extent(snap: jobs.Snapshot) -> int | None:
    """Epochs the x axes span: the whole run while it goes on, what it did once it ended."""
    return snap.config["epochs"] if snap.running else None


def _epoch_figures(snap: jobs.Snapshot) -> list:
    """Accuracy and per-digit error figures, rebuilt only when an epoch ends, shared by every
    visitor of the run (ui.figcache).

    A chart whose figure is unchanged keeps its element in the browser; a changed one is
    drawn anew, which costs Chromium without a GPU a good share of a core: taken from the
    training when the browser runs on the same machine.
    """
    key = (snap.id, snap.started, len(snap.epochs), snap.status)  # id and start: one run in any store
    return figcache.epoch_figures(key, snap.epochs, snap.batch_losses, snap.n_train, _extent(snap))


def charts(snap: jobs.Snapshot) -> None:
    """The four charts, the report's figures 1-4: loss, accuracy, and errors per digit on the
    test and the training set."""
    if not snap.batch_losses:
        return
    key = (snap.id, snap.started, len(snap.batch_losses), len(snap.epochs), snap.status)
    loss = figcache.loss_figure(key, snap.epochs, snap.batch_losses, snap.n_train, _extent(snap))
    accuracy, test_errors, train_errors = _epoch_figures(snap)
    plot = dict(width="stretch", config={"displayModeBar": False})
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss, key="train.chart.loss", **plot)
    if not snap.epochs:
        c2.info("Accuracy and errors per digit appear when the first epoch ends.")
        return
    c2.plotly_chart(accuracy, key="train.chart.accuracy", **plot)
    c3, c4 = st.columns(2)
    c3.plotly_chart(test_errors, key="train.chart.test_errors", **plot)
    c4.plotly_chart(train_errors, key="train.chart.train_errors", **plot)


def run(snap: jobs.Snapshot) -> None:
    progress(snap)
    charts(snap)
