"""The IDX reader, checksums, sources and the real MNIST splits."""

import gzip
import io

import numpy as np
import pytest

from mnistnet import data as D


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


ARR = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


def test_idx_raw_and_gz(tmp_path):
    raw = tmp_path / "a-idx3-ubyte"
    raw.write_bytes(idx_bytes(ARR))
    gz = tmp_path / "a-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes(ARR)))
    for p in (raw, gz):
        out = D.read_idx(p, expect_ndim=3)
        assert out.dtype == np.uint8 and np.array_equal(out, ARR)


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b[:-1], "truncated or padded"),
    (lambda b: b + b"\0", "truncated or padded"),
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:2] + b"\x42" + b[3:], "type code"),
    (lambda b: b[:6], "truncated header"),
    (lambda b: b[:2], "too short"),
])
def test_idx_refuses_bad_files(mutate, match):
    with pytest.raises(ValueError, match=match):
        D.read_idx_bytes(mutate(idx_bytes(ARR)), "x")


def test_idx_wrong_dimensions():
    with pytest.raises(ValueError, match="3 dimensions, expected 1"):
        D.read_idx_bytes(idx_bytes(ARR), "labels", expect_ndim=1)


def test_broken_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(idx_bytes(ARR))[:-8])
    with pytest.raises(ValueError, match="gzip"):
        D.read_idx(p)


class FakeResponse:
    def __init__(self, payload: bytes, fail_after: int | None = None):
        self.buf, self.fail_after, self.sent = io.BytesIO(payload), fail_after, 0
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, n):
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("connection dropped")
        chunk = self.buf.read(min(n, 10))
        self.sent += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_download_verifies_checksum_and_is_atomic(tmp_path):
    payload = gzip.compress(idx_bytes(ARR))
    good_sha = D.sha256(idx_bytes(ARR))
    dest = tmp_path / "cache" / "f-ubyte"
    # a checksum mismatch is refused and leaves nothing
    with pytest.raises(D.DataError, match="SHA-256"):
        D.download("u", dest, "0" * 64, opener=lambda u, timeout: FakeResponse(payload))
    assert list(dest.parent.iterdir()) == []
    # an interrupted download leaves no file either
    with pytest.raises(ConnectionResetError):
        D.download("u", dest, good_sha, opener=lambda u, timeout: FakeResponse(payload, fail_after=10))
    assert list(dest.parent.iterdir()) == []
    # a good one lands, decompressed
    D.download("u", dest, good_sha, opener=lambda u, timeout: FakeResponse(payload))
    assert [p.name for p in dest.parent.iterdir()] == ["f-ubyte"]
    assert dest.read_bytes() == idx_bytes(ARR)


def test_fetch_without_sources_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MNISTNET_DATA_DIR", raising=False)
    with pytest.raises(D.DataError, match="Put the four files") as e:
        D.fetch(sources=())
    assert str(tmp_path / "mnistnet") in str(e.value)


def test_corrupt_cached_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MNISTNET_DATA_DIR", raising=False)
    (tmp_path / "mnistnet").mkdir()
    (tmp_path / "mnistnet" / "t10k-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\0")
    with pytest.raises(D.DataError, match="does not match the SHA-256"):
        D.fetch(sources=())


def test_data_dir_env_is_used_first(tmp_path, monkeypatch):
    real = D.fetch()
    for name in D.FILES:  # the env dir may hold .gz files
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress((real / name).read_bytes(), compresslevel=1))
    monkeypatch.setenv("MNISTNET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    assert D.fetch(sources=()) == tmp_path
    d = D.load_mnist()
    assert len(d.test) == 10_000


def test_real_mnist_splits():
    d = D.load_mnist()
    assert d.train.images.shape == (50_000, 28, 28) and d.train.images.dtype == np.uint8
    assert d.val.images.shape == (10_000, 28, 28) and d.test.images.shape == (10_000, 28, 28)
    for s in (d.train, d.val, d.test):
        assert s.labels.dtype == np.int64 and s.labels.min() == 0 and s.labels.max() == 9
    # known facts of the official files: the first training label is 5, the first test label 7
    assert d.train.labels[0] == 5 and d.test.labels[0] == 7
    assert np.bincount(d.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_scaled_is_the_models_scaling_kept_once(tiny_mnist):
    """Every run in a process scales MNIST the same way: the split keeps it, read-only, and a
    model with another scaling gets its own."""
    from mnistnet import MLP

    split = tiny_mnist.test
    model = MLP((784, 8, 10))
    first = split.scaled(model.pixel_table())
    np.testing.assert_array_equal(first, model.scale_inputs(split.images))
    assert split.scaled(model.pixel_table()) is first
    assert not first.flags.writeable
    other = MLP((784, 8, 10), input_mean=0.0, input_std=1.0)
    np.testing.assert_array_equal(split.scaled(other.pixel_table()), other.scale_inputs(split.images))
