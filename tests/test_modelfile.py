"""Model files: round trips, and every kind of bad file refused with ValueError."""

import io
import zipfile

import numpy as np
import pytest

from mnistnet import MLP, load_model, save_model
from mnistnet.modelfile import model_bytes
from mnistnet.train import History


def _model():
    m = MLP((784, 12, 7, 10), seed=4)
    for b in m.biases:
        b[...] = np.random.default_rng(0).normal(size=b.shape)
    m.history = History(layer_sizes=list(m.layer_sizes), config={"seed": 4}, status="finished")
    return m


def _rewrite(path, **changes):
    """Rewrite the .npz at path with some arrays replaced (None deletes)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path, **arrays)


def test_round_trip_identical(tmp_path):
    m = _model()
    path = save_model(m, tmp_path / "m.npz")
    x = np.random.default_rng(1).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    m2 = load_model(path)
    assert m2.layer_sizes == m.layer_sizes
    assert np.array_equal(m.predict_proba(x), m2.predict_proba(x))
    assert m2.history.to_dict() == m.history.to_dict()
    assert np.array_equal(load_model(model_bytes(m)).predict_proba(x), m.predict_proba(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temp file left


@pytest.mark.parametrize("changes, match", [
    ({"W0": np.array([object()], dtype=object)}, "pickled"),
    ({"W1": np.zeros((12, 8), np.float32)}, "W1.*shape"),
    ({"b2": np.zeros(10, np.float64)}, "b2.*float32"),
    ({"W0": np.full((784, 12), np.nan, np.float32)}, "NaN"),
    ({"version": np.array(4, dtype=np.int64)}, "newer"),
    ({"version": np.array(0, dtype=np.int64)}, "unknown format version"),
    ({"format": np.array("something-else")}, "format"),
    ({"layer_sizes": np.array([784, 12, 10])}, "W1.*shape|unexpected"),
    ({"W2": None}, "missing array 'W2'"),
    ({"meta": np.array("{not json")}, "meta"),
])
def test_bad_files_refused(tmp_path, changes, match):
    path = save_model(_model(), tmp_path / "m.npz")
    if "W0" in changes and changes["W0"].dtype == object:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays.update(changes)
        np.savez(path, **arrays)  # np.savez pickles object arrays
    else:
        _rewrite(path, **changes)
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_truncated_and_foreign_files(tmp_path):
    data = model_bytes(_model())
    for i, blob in enumerate([data[: len(data) // 2], b"", b"hello", _zip_without_npy()]):
        p = tmp_path / f"bad{i}.npz"
        p.write_bytes(blob)
        with pytest.raises(ValueError):
            load_model(p)


def _zip_without_npy() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a model")
    return buf.getvalue()


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = save_model(_model(), tmp_path / "m.npz")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        save_model(MLP((784, 3, 10)), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
