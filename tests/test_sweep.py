"""Sweeps: the plan of a grid or random search, the Sweep page's form and views, and one sweep
trained on a real embedded cluster against each database (SQLite and PostgreSQL).

A grid is counted before it is built: 8 values in each of the form's 8 fields and both
schedules (33,554,432 runs, several GB as a list) are refused within a few MB, through plan and
through the page (in a fresh process: `python tests/test_sweep.py --form-child` prints what it
measured)."""

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_app import no_exception, open_page, texts, visitor
from test_hostile import peak_memory

from mnistnet import MLP, TrainConfig, load_mnist
from mnistnet.net import Net
from mnistnet.store import Store
from mnistnet.sweep import MAX_RUNS, SweepSpec, combination, plan, sample_indices, varied
from ui import sweepview
from ui.plain import md

MB = 2**20
EIGHT = {  # 8 values in each of the Sweep form's 8 fields
    "hidden": "16; 24; 32; 40; 48; 56; 64; 72",
    "learning_rate": "0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08",
    "batch_size": "16, 32, 48, 64, 80, 96, 112, 128",
    "epochs": "1, 2, 3, 4, 5, 6, 7, 8",
    "momentum": "0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7",
    "weight_decay": "0, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3",
    "shift_pixels": "0, 1, 2, 3, 4, 0, 1, 2",  # only 0-4 exist: the grid repeats some
    "seed": "0, 1, 2, 3, 4, 5, 6, 7",
}
HUGE = 8**8 * 2  # and both schedules
REFUSED = f"this grid has {HUGE:,} runs; a sweep may have at most {MAX_RUNS} (fewer values, or a random search)"


def test_a_grid_is_every_combination_and_random_a_distinct_sample():
    spec = SweepSpec(hidden=((64,), (128, 64)), learning_rate=(0.05, 0.1), seed=(0, 1, 2))
    runs = plan(spec)
    assert len(runs) == 12 and len(set(runs)) == 12
    assert {(h, c.learning_rate, c.seed) for h, c in runs} == {
        (h, lr, s) for h in ((64,), (128, 64)) for lr in (0.05, 0.1) for s in (0, 1, 2)}
    assert varied(spec) == ["hidden", "learning_rate", "seed"]
    sample = plan(SweepSpec(**{**spec.__dict__, "mode": "random", "n": 5, "search_seed": 3}))
    assert len(sample) == 5 and len(set(sample)) == 5 and set(sample) <= set(runs)
    assert sample == plan(SweepSpec(**{**spec.__dict__, "mode": "random", "n": 5, "search_seed": 3}))
    assert SweepSpec.from_dict(spec.to_dict()) == spec


def eight_by_eight(**kw) -> SweepSpec:
    texts_ = {name: EIGHT[name] for name in sweepview.FIELDS}
    spec, errors = sweepview.parse(texts_, ["constant", "cosine"], "random", 8, 50_000, 50_000)
    assert errors == {}, errors
    return replace(spec, **{"mode": "grid", "n": None, **kw})


def test_a_huge_grid_is_refused_by_its_size_before_anything_is_built():
    spec = eight_by_eight()
    assert all(len(getattr(spec, name)) == 8 for name in ("hidden", *sweepview.FIELDS))
    t = time.perf_counter()
    with peak_memory() as peak, pytest.raises(ValueError) as e:
        plan(spec)
    seconds = time.perf_counter() - t
    assert str(e.value) == REFUSED
    assert peak[0] < 50 * MB and seconds < 1.0, (peak[0], seconds)  # measured: 1.3 KB and 0.1 ms
    # a random sample of the same grid: 32 of the 33.5 million, decoded from their indices
    t = time.perf_counter()
    with peak_memory() as peak:
        sample = plan(replace(spec, mode="random", n=MAX_RUNS, search_seed=7))
    assert len(sample) == MAX_RUNS and peak[0] < 50 * MB and time.perf_counter() - t < 1.0
    picks = sample_indices(HUGE, MAX_RUNS, 7)
    axes = [spec.hidden] + [getattr(spec, name) for name in ("learning_rate", "batch_size", "epochs", "momentum",
                                                             "lr_schedule", "weight_decay", "shift_pixels", "seed")]
    assert [(h, c.learning_rate, c.lr_schedule, c.seed) for h, c in sample] == [
        (combination(axes, i)[0], combination(axes, i)[1], combination(axes, i)[5], combination(axes, i)[8])
        for i in picks]


def test_an_index_decodes_to_the_combination_the_grid_would_have_built():
    axes = [((64,), (128, 64)), (0.05, 0.1, 0.2), ("constant", "cosine"), (0, 1, 2, 3)]
    grid = list(itertools.product(*axes))
    assert [combination(axes, i) for i in range(len(grid))] == grid
    # the picks of the list-based version: numpy's choice over the count, sorted
    for seed in range(20):
        old = sorted(np.random.default_rng(seed).choice(len(grid), size=5, replace=False))
        assert sample_indices(len(grid), 5, seed) == old
    # beyond int64: Python integers, still k distinct ones and reproducible
    huge = 2**80 + 3
    picks = sample_indices(huge, MAX_RUNS, 1)
    assert len(set(picks)) == MAX_RUNS and all(0 <= i < huge for i in picks) and picks == sorted(picks)
    assert picks == sample_indices(huge, MAX_RUNS, 1) != sample_indices(huge, MAX_RUNS, 2)
    wide = [tuple(range(2**20))] * 4  # 2**80 combinations
    assert combination(wide, 2**80 - 1) == (2**20 - 1,) * 4 and combination(wide, 2**20 + 5) == (0, 0, 1, 5)


def test_a_random_sweep_over_more_than_2_to_the_63_combinations():
    n = 140  # 140**9 > 2**63
    spec = SweepSpec(hidden=tuple((16 + i,) for i in range(n)), learning_rate=tuple(0.001 * (i + 1) for i in range(n)),
                     batch_size=tuple(range(1, n + 1)), epochs=(1,) * n, momentum=tuple(i / (2 * n) for i in range(n)),
                     lr_schedule=("constant", "cosine") * (n // 2), weight_decay=tuple(1e-6 * i for i in range(n)),
                     shift_pixels=(0, 1, 2, 3, 4) * (n // 5), seed=tuple(range(n)), mode="random", n=5)
    assert n**9 > 2**63
    with peak_memory() as peak:
        runs = plan(spec)
    assert len(runs) == 5 and peak[0] < 5 * MB
    with pytest.raises(ValueError, match=f"this grid has {n**9:,} runs"):
        plan(replace(spec, mode="grid", n=None))


@pytest.mark.parametrize("spec, message", [
    (SweepSpec(seed=tuple(range(MAX_RUNS + 1))), f"at most {MAX_RUNS}"),
    (SweepSpec(learning_rate=(0.1, 50.0)), "learning_rate must be a number above 0 and at most 10"),
    (SweepSpec(hidden=((4096,),)), "hidden layer size 4096 is over the limit of 2048"),
    (SweepSpec(hidden=((2048,) * 4,), epochs=(100,)), "times larger than one run may be here"),
    (SweepSpec(mode="random", n=0), "a random sweep needs n from 1"),
    (SweepSpec(seed=()), "seed needs at least one value"),
])
def test_a_bad_sweep_is_refused_naming_the_value(spec, message):
    with pytest.raises(ValueError, match=message):
        plan(spec)


def test_a_field_is_refused_by_its_length_before_it_is_split():
    texts_ok = {name: default for name, (_, _, default) in sweepview.FIELDS.items()}
    many = ", ".join(str(i) for i in range(10_000))  # 58,888 characters
    with peak_memory() as peak:
        spec, errors = sweepview.parse({**texts_ok, "seed": many}, ["constant"], "grid", 8, 50_000, 50_000)
    assert spec is None and peak[0] < 1 * MB
    assert errors["seed"] == ("Seeds: at most 200 characters, got 58,888 "
                              "(got '0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17')")
    nine = ", ".join(str(i) for i in range(9))
    assert sweepview.parse({**texts_ok, "seed": nine}, ["constant"], "grid", 8, 50_000, 50_000)[1]["seed"].startswith(
        "Seeds: at most 8 values, got 9")


def test_the_form_text_becomes_a_spec_or_a_message():
    texts_ok = {name: default for name, (_, _, default) in sweepview.FIELDS.items()}
    spec, errors = sweepview.parse(texts_ok, ["constant"], "grid", 8, 50_000, 50_000)
    assert errors == {} and spec.hidden == ((512, 256), (256, 128)) and spec.seed == (0, 1)
    bad = {**texts_ok, "learning_rate": "fast", "hidden": ""}
    spec, errors = sweepview.parse(bad, ["constant"], "grid", 8, 50_000, 50_000)
    assert spec is None and "not a list of numbers" in errors["learning_rate"] and "hidden" in errors


def test_a_sweep_tries_network_lines_next_to_hidden_sizes():
    spec = SweepSpec.from_dict({"hidden": [[32], "CONV 4x5 -pool- dense 16", "dense 64 - dense 32"],
                                "learning_rate": [0.1], "dataset": "fashion"})
    assert spec.hidden == ((32,), "conv 4x5 - pool - dense 16", (64, 32))  # a dense ReLU line is its widths
    runs = plan(spec)
    assert [arch for arch, _ in runs] == list(spec.hidden)
    assert {config.dataset for _, config in runs} == {"fashion"}
    with pytest.raises(ValueError, match="'poll' is not a layer"):
        SweepSpec.from_dict({"hidden": ["conv 8x5 - poll"]})
    with pytest.raises(ValueError, match="values per image"):
        plan(SweepSpec(hidden=("conv 128x9 same - conv 128x9 same - dense 10",)))
    with pytest.raises(ValueError, match="times larger than one run may be here"):
        plan(SweepSpec(hidden=("conv 32x5 same - pool - conv 64x5 same - pool - dense 256",), epochs=(100,)))
    with pytest.raises(ValueError, match="dataset must be one of mnist, fashion, got 'cifar'"):
        plan(SweepSpec(dataset="cifar"))


def test_the_form_takes_lines_and_names_a_bad_token():
    texts_ok = {name: default for name, (_, _, default) in sweepview.FIELDS.items()}
    spec, errors = sweepview.parse({**texts_ok, "hidden": "512-256; conv 8x5 - pool - dense 128"}, ["constant"],
                                   "grid", 8, 50_000, 50_000, "fashion")
    assert errors == {} and spec.hidden == ((512, 256), "conv 8x5 - pool - dense 128") and spec.dataset == "fashion"
    spec, errors = sweepview.parse({**texts_ok, "hidden": "512-256; conv 8x5 - poll"}, ["constant"],
                                   "grid", 8, 50_000, 50_000)
    assert spec is None and errors["hidden"].startswith("Networks: 'conv 8x5 - poll': 'poll' is not a layer")


def _finished_run(store, owner, sweep_id, lr, acc):
    record = {"epoch": 1, "partial": False, "seconds": 1.0, "train_seconds": 1.0, "learning_rate": lr,
              **{s: {"loss": 0.3, "accuracy": acc, "correct": int(acc * 1000), "total": 1000,
                     "per_digit_errors": [0] * 10} for s in ("train", "val", "test")}}
    cfg = TrainConfig(learning_rate=lr, epochs=1).to_dict()
    run_id = store.submit_run(owner, (784, 16, 10), cfg, "sweep", sweep_id=sweep_id)
    store.claim_run(run_id, "w")
    store.add_epoch(run_id, record)
    store.end_run(run_id, "finished", MLP((784, 16, 10), seed=run_id))
    return run_id


def test_a_sweep_link_is_read_only_for_others(tiny_mnist, tiny_model):
    store, alice = Store(), visitor()
    spec = SweepSpec(hidden=((16,),), learning_rate=(0.05, 0.1), epochs=(1,))
    sweep_id = store.create_sweep(alice, spec.to_dict())
    for lr, acc in ((0.05, 0.81), (0.1, 0.86)):
        _finished_run(store, alice, sweep_id, lr, acc)
    at = open_page("pages/6_Sweep.py", tiny_mnist, tiny_model, query={"sweep": str(sweep_id)})
    no_exception(at)
    assert "read-only" in texts(at) and len(at.get("plotly_chart")) == 2
    assert not [b for b in at.button if b.key == "sweep.stop"]
    table = at.dataframe[0].value
    assert list(table["test accuracy"]) == [81.0, 86.0] and list(table["lr"]) == [0.05, 0.1]
    mine = open_page("pages/6_Sweep.py", tiny_mnist, tiny_model, query={"sweep": str(sweep_id)}, owner=alice)
    assert "read-only" not in texts(mine)
    assert "Make the best run my current model" in mine.button(key="sweep.best").label


def test_the_sweep_form_refuses_bad_values(tiny_mnist, tiny_model):
    at = open_page("pages/6_Sweep.py", tiny_mnist, tiny_model)
    no_exception(at)
    assert not at.button(key="sweep.start").disabled
    at.text_input(key="sweep.w.learning_rate").set_value("0.1, 50").run()
    no_exception(at)
    assert at.button(key="sweep.start").disabled
    assert any("at most 10" in e.value for e in at.error)


def test_a_sweep_on_the_cluster_on_each_database(db_url):
    from mnistnet.cluster import Cluster, follow_sweep

    store = Store(db_url)
    store.import_mnist(load_mnist())
    cluster = Cluster(store, n_workers=2)
    try:
        spec = SweepSpec(hidden=((32,), "conv 4x5 - pool - dense 16"), learning_rate=(0.05, 0.1), epochs=(1,),
                         train_size=3000)
        t = time.monotonic()
        sweep_id = cluster.submit_sweep("alice", spec)
        rows, seconds = follow_sweep(cluster, sweep_id)
        assert time.monotonic() - t < 120
    finally:
        cluster.close()
    assert [r["status"] for r in rows] == ["finished"] * 4
    assert sorted(r["config"]["learning_rate"] for r in rows) == [0.05, 0.05, 0.1, 0.1]
    assert all(r["owner"] == "alice" and r["sweep_id"] == sweep_id and r["model_id"] for r in rows)
    convs = [r for r in rows if r["spec"].get("net")]  # the workers built the line's network
    assert [r["spec"]["net"] for r in convs] == ["conv 4x5 - pool - dense 16"] * 2
    assert all(isinstance(store.load_model(r["model_id"]), Net) and r["test_accuracy"] > 0.5 for r in convs)
    assert store.sweep(sweep_id)["spec"]["learning_rate"] == [0.05, 0.1]


# -- the Sweep page's form with the 8 x 8 grid, in a fresh process -----------------------------
def _form_child() -> None:
    """In a fresh process: the Sweep page once (imports, MNIST), then the 8 x 8 grid with both
    schedules typed in, then 10,000 seeds; for each, the growth of the peak RSS (Pillow's and
    numpy's buffers too, hostile_files.reset_peak_rss) and the seconds. One JSON line."""
    from hostile_files import peak_rss_kb, reset_peak_rss

    from mnistnet.data import MNIST, Split

    d = load_mnist()
    tiny = MNIST(*(Split(s.images[:n], s.labels[:n]) for s, n in ((d.train, 3000), (d.val, 500), (d.test, 1000))))
    at = open_page("pages/6_Sweep.py", tiny)
    out = {}
    for case, values in (("8x8", EIGHT), ("10,000 seeds", {"seed": ", ".join(str(i) for i in range(10_000))})):
        for name, text in values.items():
            at.text_input(key="sweep.w." + name).set_value(text)
        at.multiselect(key="sweep.w.schedules").set_value(["constant", "cosine"])
        idle, t = reset_peak_rss(), time.perf_counter()
        at.run()
        out[case] = {"seconds": time.perf_counter() - t, "peak_mb": (peak_rss_kb() - idle) / 1024,
                     "errors": [e.value for e in at.error], "exceptions": [e.value for e in at.exception],
                     "start_disabled": at.button(key="sweep.start").disabled}
    print(json.dumps(out))


def test_the_sweep_form_refuses_the_8x8_grid_within_50_mb():
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    done = subprocess.run([sys.executable, __file__, "--form-child"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))  # the figures, with pytest -s
    grid, seeds = out["8x8"], out["10,000 seeds"]
    assert not grid["exceptions"] and not seeds["exceptions"]
    assert grid["errors"] == [md(REFUSED[:1].upper() + REFUSED[1:])] and grid["start_disabled"]
    # the box keeps 200 characters (max_chars; parse refuses longer text all the same, before splitting)
    assert any(e.startswith(md("Seeds: at most 8 values, got 53 (got '0, 1, 2,")) for e in seeds["errors"])
    assert seeds["start_disabled"]
    # the page's whole rerun, in MB of peak RSS over the level before it (measured: 0-1 MB; the
    # list of 33.5 million combinations this page built before was several GB)
    assert grid["peak_mb"] < 50 and seeds["peak_mb"] < 50, out
    assert grid["seconds"] < 10 and seeds["seconds"] < 10, out


if __name__ == "__main__" and sys.argv[1:] == ["--form-child"]:
    _form_child()
