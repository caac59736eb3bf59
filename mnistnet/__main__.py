"""The command line: python -m mnistnet fetch | train | evaluate | predict.

Imports the core only. Bad arguments and unreadable files exit with code 2, a failed run
with code 1, always with one line on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

import numpy as np

from . import data as data_mod
from .drawing import preprocess_drawing
from .metrics import evaluate_scaled
from .modelfile import load_model, save_model
from .net import describe, model_for
from .network import MLP
from .presets import PRESETS, preset
from .train import TrainingDiverged

CLI_OWNER = "cli"  # the owner of runs started from the command line (mnistnet.store's too)


class UsageError(Exception):
    """Bad input from the user: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


_last_draw = [0.0]


def _bar(label: str, done: float, total: float, extra: str = "") -> None:
    if not total:  # size unknown (npm pack): say what is happening instead of a 0% bar
        sys.stderr.write(f"\r{label} ...")
        sys.stderr.flush()
        return
    now = time.monotonic()
    if done < total and now - _last_draw[0] < 0.2:  # redraw at most 5 times a second
        return
    _last_draw[0] = now
    frac = min(done / total, 1.0) if total else 0.0
    filled = int(frac * 30)
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {frac * 100:5.1f}% {extra}   ")
    sys.stderr.flush()


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"--hidden must be comma-separated integers like 256,128, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--hidden sizes must be >= 1, got {text!r}")
    return sizes


def _store():
    # SQLAlchemy loads only for the commands that use the store (fetch, train, runs, sweep):
    # `predict` and `evaluate` stay as light as `import mnistnet`.
    from .store import Store
    return Store()


def _load_data(quiet: bool, store=None):
    """MNIST from the store (imported there once from the verified IDX files)."""
    store = store or _store()
    if not store.has_mnist():
        def report(name, done, total):
            if not quiet:
                _bar(f"fetch {name}", done, total)
        try:
            verified = data_mod.load_mnist(report)
        finally:
            if not quiet:
                sys.stderr.write("\n")
        store.import_mnist(verified)
    return store.load_mnist()


def cmd_fetch(args) -> int:
    folder = data_mod.fetch(lambda name, done, total: _bar(f"fetch {name}", done, total))
    sys.stderr.write("\n")
    store = _store()
    added = store.import_mnist(data_mod.load_mnist())
    print(f"MNIST verified in {folder}; " + (f"{added:,} samples imported into the store" if added
                                             else "already in the store"))
    return 0


def cmd_runs(args) -> int:
    rows = _store().list_runs()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':>4}  {'status':<11} {'origin':<8} {'network':<18} {'epochs':>6}  {'test accuracy':<22} started")
    for r in rows:
        acc = (f"{r['test_correct']:,}/{r['test_total']:,} = {r['test_accuracy'] * 100:.2f}%"
               if r["test_total"] else "-")
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"]))
        network = r["spec"].get("net") or "-".join(map(str, r["layer_sizes"]))
        dataset = r["config"].get("dataset", "mnist")
        data = "" if dataset == "mnist" else f"  ({data_mod.DATASETS[dataset].title})"
        print(f"{r['id']:>4}  {r['status']:<11} {r['origin']:<8} {network:<18} "
              f"{r['epochs']:>6}  {acc:<22} {started}{data}")
    return 0


def cmd_train(args) -> int:
    arch, config = preset(args.preset, args.data or "mnist")  # the preset's recipe for that data set
    if args.hidden and args.net:
        raise UsageError("give --hidden or --net, not both")
    if args.hidden:
        arch = _hidden(args.hidden)
    elif args.net:
        arch = args.net
    overrides = {k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.lr),
                                   ("batch_size", args.batch_size), ("seed", args.seed),
                                   ("dataset", args.data), ("train_size", args.train_size)) if v is not None}
    config = replace(config, **overrides)  # validates: ValueError names the bad value
    model = model_for(arch, seed=config.seed)  # ValueError names a bad token or limit
    store = _store()
    d = _load_data(args.quiet, store) if config.dataset == "mnist" else data_mod.load_dataset(config.dataset)

    def progress(p):
        if not args.quiet:
            _bar(f"epoch {p.epoch}/{p.epochs}", p.samples_seen, p.total_samples,
                 f"loss {p.running_loss:.4f}  {p.samples_per_s:,.0f} samples/s")
            if p.epoch_record:
                t = p.epoch_record["test"]
                sys.stderr.write(f"\nepoch {p.epoch}: test {t['correct']:,}/{t['total']:,} "
                                 f"= {t['accuracy'] * 100:.2f}%, {p.epoch_record['seconds']:.1f} s\n")
    try:
        from .runs import train_recorded  # with the store (see _store)
        run = train_recorded(store, model, d, config, "cli", on_progress=progress)
    except TrainingDiverged as e:
        print(f"mnistnet: training failed: {e}", file=sys.stderr)
        return 1
    hist = run.history
    if args.out:  # with the snapshots the run recorded, as the lab's download has them
        save_model(model, args.out, store.model_snapshots(run.model_id) if run.model_id else [])
    last = hist.epochs[-1]
    result = {
        "test_accuracy": last["test"]["accuracy"], "val_accuracy": last["val"]["accuracy"],
        "train_accuracy": last["train"]["accuracy"], "test_correct": last["test"]["correct"],
        "test_total": last["test"]["total"], "test_loss": last["test"]["loss"],
        "epoch_seconds": [e["seconds"] for e in hist.epochs],
        "layer_sizes": list(model.layer_sizes), "net": getattr(model, "spec", None), "config": hist.config,
        "model": args.out, "run_id": run.run_id, "parameters": sum(W.size + b.size for W, b in
                                                                   zip(model.weights, model.biases)),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"test accuracy {result['test_correct']:,}/{result['test_total']:,} = "
              f"{result['test_accuracy'] * 100:.2f}%  ({sum(result['epoch_seconds']):.1f} s)"
              + (f"; model saved to {args.out}" if args.out else ""))
    return 0


def _floats(values, name):
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise UsageError(f"--{name} takes numbers, got {' '.join(values)}") from None


def _ints(values, name):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise UsageError(f"--{name} takes whole numbers, got {' '.join(values)}") from None


def cmd_sweep(args) -> int:
    from .sweep import SweepSpec, network, plan  # with the store and the cluster (see _store)

    networks = tuple(_hidden(h) for h in (args.hidden or ([] if args.net else ["512,256"])))
    try:
        networks += tuple(network(line) for line in args.net)
    except ValueError as e:
        raise UsageError(f"--net: {e}") from None
    spec = SweepSpec(hidden=networks, learning_rate=_floats(args.lr, "lr"),
                     batch_size=_ints(args.batch_size, "batch-size"), epochs=_ints(args.epochs, "epochs"),
                     momentum=_floats(args.momentum, "momentum"), lr_schedule=tuple(args.schedule),
                     weight_decay=_floats(args.weight_decay, "weight-decay"),
                     shift_pixels=_ints(args.shifts, "shifts"), seed=_ints(args.seeds, "seeds"),
                     mode="random" if args.random else "grid", n=args.random, train_size=args.train_size,
                     dataset=args.data)
    plan(spec)  # every bad value is refused before anything starts
    store = _store()
    _load_data(args.quiet, store)  # MNIST in the store before the workers look for it
    from .cluster import Cluster, follow_sweep
    from .store import ACTIVE

    cluster = Cluster(store, os.environ.get("MNISTNET_SCHEDULER") or None, n_workers=args.workers)
    try:
        sweep_id = cluster.submit_sweep(CLI_OWNER, spec)
        if not args.quiet:
            print(f"sweep #{sweep_id}: {len(plan(spec))} runs on {cluster.address}", file=sys.stderr)
        try:
            rows, seconds = follow_sweep(cluster, sweep_id, None if args.quiet else (
                lambda r: print("  ended " + _sweep_line(r), file=sys.stderr)))
        except KeyboardInterrupt:
            for r in store.list_runs(sweep_id=sweep_id, statuses=ACTIVE):
                store.request_stop(r["id"], CLI_OWNER)
            raise
    finally:
        cluster.close()
    rows.sort(key=lambda r: -(r["test_accuracy"] or 0))
    if args.json:
        print(json.dumps({"sweep_id": sweep_id, "seconds": seconds, "runs": rows}))
    else:
        print(f"sweep #{sweep_id}: {len(rows)} runs in {seconds:.1f} s")
        for r in rows:
            print("  " + _sweep_line(r))
    return 0 if all(r["status"] == "finished" for r in rows) else 1


def _sweep_line(r: dict) -> str:
    c = r["config"]
    acc = f"{100 * r['test_accuracy']:.2f}%" if r["test_accuracy"] is not None else "-"
    net = (r.get("spec") or {}).get("net") or "-".join(map(str, r["layer_sizes"]))
    return (f"#{r['id']:<5} {r['status']:<11} {acc:>7}  {net:<18} "
            f"lr {c['learning_rate']:<6g} batch {c['batch_size']:<5} epochs {c['epochs']:<3} "
            f"momentum {c['momentum']:<4g} {c['lr_schedule']:<8} wd {c['weight_decay']:<6g} "
            f"shifts {c['shift_pixels']} seed {c['seed']}" + (f"  ({r['error']})" if r["error"] else ""))


def cmd_evaluate(args) -> int:
    model = _load_model(args.model)
    hist = model.history
    d = data_mod.load_dataset(hist.config.get("dataset", "mnist") if hist else "mnist")
    t0 = time.perf_counter()
    m = evaluate_scaled(model, model.scale_inputs(d.test.images), d.test.labels)
    result = {k: m[k] for k in ("accuracy", "correct", "total", "loss", "per_digit_errors")}
    result.update(layer_sizes=list(model.layer_sizes), net=getattr(model, "spec", None),
                  seconds=time.perf_counter() - t0)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model}: {describe(model)}, test accuracy "
              f"{m['correct']:,}/{m['total']:,} = {m['accuracy'] * 100:.2f}%, loss {m['loss']:.4f}")
        print("errors per digit: " + "  ".join(f"{d}:{e}" for d, e in enumerate(m["per_digit_errors"])))
    return 0


def cmd_predict(args) -> int:
    model = _load_model(args.model)
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(args.image) as im:
            im.load()
            arr = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "L"))
    except FileNotFoundError:
        raise UsageError(f"no such image: {args.image}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{args.image}: not a readable image ({e})") from None
    x = preprocess_drawing(arr)
    if x is None:
        raise UsageError(f"{args.image}: the image is blank (no ink found)")
    probs = model.predict_proba(x[None])[0]
    digit = int(probs.argmax())
    if args.json:
        print(json.dumps({"digit": digit, "probabilities": probs.tolist()}))
    else:
        print(f"digit {digit} ({probs[digit] * 100:.1f}%)")
        print("  ".join(f"{d}:{p:.3f}" for d, p in enumerate(probs)))
    return 0


def _load_model(path: str) -> MLP:
    try:
        return load_model(path)
    except FileNotFoundError:
        raise UsageError(f"no such model file: {path}") from None
    except ValueError as e:
        raise UsageError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mnistnet", description="A from-scratch NumPy network for MNIST.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    f = sub.add_parser("fetch", help="download and verify MNIST")
    f.set_defaults(func=cmd_fetch)
    t = sub.add_parser("train", help="train a network; print test accuracy")
    t.add_argument("--preset", choices=sorted(PRESETS), default="seed")
    t.add_argument("--hidden", help="hidden layer sizes, e.g. 256,128")
    t.add_argument("--net", help="the network in one line, e.g. 'conv 8x5 - pool - conv 16x5 - pool - dense 128'")
    t.add_argument("--data", choices=sorted(data_mod.DATASETS),
                   help="the data set (default: MNIST); a preset trains for it (clothes are mirrored, not turned)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--train-size", type=int, help="train on the first N training images")
    t.add_argument("--out", help="save the model to this .npz file")
    t.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="test accuracy of a saved model")
    e.add_argument("model")
    e.add_argument("--json", action="store_true")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)
    sw = sub.add_parser("sweep", help="train a grid (or a random sample) of networks on a Dask cluster",
                        description="Every option takes one or more values; the sweep tries their "
                        "combinations. The cluster is MNISTNET_SCHEDULER's, or one started here.")
    sw.add_argument("--hidden", nargs="+", help="hidden sizes, e.g. 512,256 256,128 (default 512,256 without --net)")
    sw.add_argument("--net", nargs="+", default=[], metavar="LINE",
                    help="networks in one line each, e.g. 'conv 8x5 - pool - dense 128' (tried with --hidden's)")
    sw.add_argument("--data", choices=sorted(data_mod.DATASETS), default="mnist", help="the data set of every run")
    sw.add_argument("--lr", nargs="+", default=["0.13"])
    sw.add_argument("--batch-size", nargs="+", default=["50"])
    sw.add_argument("--epochs", nargs="+", default=["2"])
    sw.add_argument("--momentum", nargs="+", default=["0"])
    sw.add_argument("--schedule", nargs="+", default=["constant"], choices=["constant", "cosine"])
    sw.add_argument("--weight-decay", nargs="+", default=["0"])
    sw.add_argument("--shifts", nargs="+", default=["0"], help="random shifts of up to N pixels")
    sw.add_argument("--seeds", nargs="+", default=["0"])
    sw.add_argument("--random", type=int, metavar="N", help="a random sample of N combinations, not the grid")
    sw.add_argument("--train-size", type=int, help="train on the first N training images")
    sw.add_argument("--workers", type=int, help="workers of the cluster started here (default: one per core)")
    sw.add_argument("--json", action="store_true")
    sw.add_argument("--quiet", action="store_true")
    sw.set_defaults(func=cmd_sweep)
    ru = sub.add_parser("runs", help="list the recorded training runs")
    ru.add_argument("--json", action="store_true")
    ru.set_defaults(func=cmd_runs)
    r = sub.add_parser("predict", help="classify a digit image (PNG, JPEG...)")
    r.add_argument("model")
    r.add_argument("image")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_predict)
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, ValueError) as e:
        print(f"mnistnet: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # DataError, StoreError
        print(f"mnistnet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmnistnet: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"mnistnet: error: {e}", file=sys.stderr)
        return 1
    except Exception:  # a database driver's error, for one: a sentence, never its SQL or class
        if os.environ.get("MNISTNET_DEBUG"):
            raise
        print("mnistnet: error: something unexpected went wrong; run again with MNISTNET_DEBUG=1 "
              "to see the details", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
