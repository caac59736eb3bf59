"""Sweeps: the plan of a grid or random search, the Sweep page's form and views, and one sweep
trained on a real embedded cluster against each database (SQLite and PostgreSQL)."""

import time

import pytest
from test_app import no_exception, open_page, texts, visitor

from mnistnet import MLP, TrainConfig, load_mnist
from mnistnet.store import Store
from mnistnet.sweep import MAX_RUNS, SweepSpec, plan, varied
from ui import sweepview


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


def test_the_form_text_becomes_a_spec_or_a_message():
    texts_ok = {name: default for name, (_, _, default) in sweepview.FIELDS.items()}
    spec, errors = sweepview.parse(texts_ok, ["constant"], "grid", 8, 50_000, 50_000)
    assert errors == {} and spec.hidden == ((512, 256), (256, 128)) and spec.seed == (0, 1)
    bad = {**texts_ok, "learning_rate": "fast", "hidden": ""}
    spec, errors = sweepview.parse(bad, ["constant"], "grid", 8, 50_000, 50_000)
    assert spec is None and "not a list of numbers" in errors["learning_rate"] and "hidden" in errors


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
        spec = SweepSpec(hidden=((32,),), learning_rate=(0.05, 0.1), epochs=(1,), train_size=3000)
        t = time.monotonic()
        sweep_id = cluster.submit_sweep("alice", spec)
        rows, seconds = follow_sweep(cluster, sweep_id)
        assert time.monotonic() - t < 120
    finally:
        cluster.close()
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert sorted(r["config"]["learning_rate"] for r in rows) == [0.05, 0.1]
    assert all(r["owner"] == "alice" and r["sweep_id"] == sweep_id and r["model_id"] for r in rows)
    assert store.sweep(sweep_id)["spec"]["learning_rate"] == [0.05, 0.1]
