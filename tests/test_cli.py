"""The CLI as a user runs it: exit codes, one-line errors, JSON output."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

DB = {}


@pytest.fixture(scope="module", autouse=True)
def private_store(tmp_path_factory):
    """Every CLI run in this module records into one SQLite file of its own."""
    DB["url"] = f"sqlite:///{tmp_path_factory.mktemp('db') / 'cli.sqlite3'}"
    yield DB["url"]
    DB.clear()


def run(*args, timeout=300):
    env = {**os.environ, "MNISTNET_DB_URL": DB["url"]}
    return subprocess.run([sys.executable, "-m", "mnistnet", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(r):
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("mnistnet: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "m.npz"
    r = run("train", "--hidden", "64", "--epochs", "1", "--out", str(out), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for key in ("test_accuracy", "val_accuracy", "train_accuracy", "test_correct", "test_total",
                "epoch_seconds", "layer_sizes"):
        assert key in result
    assert result["layer_sizes"] == [784, 64, 10] and result["test_total"] == 10_000
    assert result["test_accuracy"] == result["test_correct"] / 10_000 > 0.9
    return out, result


@pytest.mark.parametrize("data", ["mnist", "fashion"])
def test_a_layer_stack_trains_saves_and_evaluates(data, tmp_path):
    """A one-line CNN through the CLI on either data set: its file holds the line, evaluate
    reads the run's data set and gives the training's exact count, runs lists the line."""
    line = "conv 4x5 - pool - conv 8x3 - pool - dense 32"
    out = tmp_path / "cnn.npz"
    r = run("train", "--net", line, "--epochs", "1", "--train-size", "6000", "--data", data,
            "--out", str(out), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["net"] == line and result["layer_sizes"] == [784, 200, 32, 10]
    assert result["config"]["dataset"] == data and result["parameters"] == 4 * 26 + 8 * 37 + 200 * 32 + 32 + 330
    assert result["test_accuracy"] > (0.75 if data == "mnist" else 0.6)  # 10% by chance
    e = run("evaluate", str(out), "--json")
    assert e.returncode == 0, e.stderr
    evaluated = json.loads(e.stdout)
    assert evaluated["correct"] == result["test_correct"] and evaluated["net"] == line
    listed = run("runs")
    assert line in listed.stdout
    if data == "fashion":
        assert any(line in ln and ln.endswith("(Fashion-MNIST)") for ln in listed.stdout.splitlines())


def test_a_preset_on_fashion_trains_its_recipe_for_clothes():
    """--preset with --data fashion: the preset's clothes recipe (mirrored, not turned),
    with the options given on top."""
    r = run("train", "--preset", "cnn", "--data", "fashion", "--epochs", "1", "--train-size", "3000",
            "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)["config"]
    assert config["dataset"] == "fashion" and config["flip"] is True and config["epochs"] == 1
    assert config["rotate_degrees"] == config["thickness"] == 0 and config["weight_decay"] == 0.0005


def test_fetch_imports_into_the_store_once():
    r = run("fetch")
    assert r.returncode == 0 and "verified" in r.stdout, r.stderr
    assert "70,000 samples imported" in r.stdout or "already in the store" in r.stdout
    again = run("fetch")
    assert again.returncode == 0 and "already in the store" in again.stdout


def test_runs_lists_recorded_runs(model_file):
    _, trained = model_file
    r = run("runs", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    row = rows[trained["run_id"]]
    assert row["status"] == "finished" and row["epochs"] == 1 and row["origin"] == "cli"
    assert row["test_correct"] == trained["test_correct"] and row["model_id"] is not None
    table = run("runs")
    assert table.returncode == 0 and f"{trained['test_correct']:,}/10,000" in table.stdout


def test_evaluate_matches_training(model_file):
    path, trained = model_file
    r = run("evaluate", str(path), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["correct"] == trained["test_correct"]


def test_predict_png(model_file, tmp_path):
    from mnistnet import load_mnist
    d = load_mnist()
    i = int(np.flatnonzero(d.test.labels == 3)[0])
    png = tmp_path / "three.png"
    Image.fromarray(255 - d.test.images[i]).resize((200, 200)).save(png)  # dark ink on white paper
    r = run("predict", str(model_file[0]), str(png), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["digit"] == 3 and len(out["probabilities"]) == 10
    assert abs(sum(out["probabilities"]) - 1) < 1e-4


@pytest.mark.parametrize("args, match", [
    (("train", "--lr", "0"), "learning_rate"),
    (("train", "--lr", "nan"), "learning_rate"),
    (("train", "--batch-size", "0"), "batch_size"),
    (("train", "--epochs", "0"), "epochs"),
    (("train", "--hidden", "128,0"), "--hidden"),
    (("train", "--hidden", "abc"), "--hidden"),
    (("train", "--preset", "nope"), "preset"),
    (("train", "--net", "conv 8x5 - spline 3"), "'spline 3' is not a layer"),
    (("train", "--net", "conv 999x5"), "filters must be 1 to 128, got 999"),
    (("train", "--net", "conv 8x5", "--hidden", "64"), "give --hidden or --net, not both"),
    (("train", "--data", "cifar"), "invalid choice"),
    (("sweep", "--net", "conv 8x5 - poll"), "--net: 'poll' is not a layer"),
    (("sweep", "--net", "conv 128x9 same - conv 128x9 same"), "values per image"),
    (("sweep", "--data", "cifar"), "invalid choice"),
    (("evaluate", "/no/such/model.npz"), "no such model file"),
    (("frobnicate",), "invalid choice"),
])
def test_bad_arguments_exit_2(args, match):
    r = run(*args)
    assert r.returncode == 2
    assert match in one_line_error(r)


def test_corrupt_files_exit_2(tmp_path, model_file):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(model_file[0].read_bytes()[:500])
    r = run("evaluate", str(bad))
    assert r.returncode == 2 and "truncated or corrupt" in one_line_error(r)
    notimg = tmp_path / "x.png"
    notimg.write_text("hello")
    r = run("predict", str(model_file[0]), str(notimg))
    assert r.returncode == 2 and "not a readable image" in one_line_error(r)
    blank = tmp_path / "blank.png"
    Image.new("L", (100, 100), 0).save(blank)
    r = run("predict", str(model_file[0]), str(blank))
    assert r.returncode == 2 and "blank" in one_line_error(r)


def test_diverging_run_exits_1():
    r = run("train", "--hidden", "256,128", "--epochs", "1", "--lr", "10", "--quiet")
    assert r.returncode == 1 and "learning_rate=10.0" in one_line_error(r)


def test_a_learning_rate_over_the_limit_exits_2_naming_it():
    r = run("train", "--epochs", "1", "--lr", "50", "--quiet")
    assert r.returncode == 2 and "learning_rate must be a number above 0 and at most 10, got 50.0" in one_line_error(r)
