"""Fashion-MNIST from Debian's dataset-fashion-mnist (`make fetch` installs it) and the registry of
data sets. Real files throughout; a bad copy is made by flipping one byte of a real one."""

import gzip
import shutil

import numpy as np
import pytest

from mnistnet import data as D


@pytest.fixture(scope="module")
def fashion():
    return D.load_fashion_mnist()


def test_fashion_splits_as_mnist_does(fashion):
    assert fashion.train.images.shape == (50_000, 28, 28)
    assert fashion.val.images.shape == (10_000, 28, 28) and fashion.test.images.shape == (10_000, 28, 28)
    for s in (fashion.train, fashion.val, fashion.test):
        assert s.images.dtype == np.uint8 and s.labels.dtype == np.int64
        assert s.labels.shape == (len(s.images),)
    # the official files are balanced: 6,000 of each class in training, 1,000 in test
    train_and_val = np.concatenate([fashion.train.labels, fashion.val.labels])
    assert np.bincount(train_and_val, minlength=10).tolist() == [6000] * 10
    assert np.bincount(fashion.test.labels, minlength=10).tolist() == [1000] * 10
    # known facts of the official files: the first training and the first test image are ankle boots
    assert fashion.train.labels[0] == 9 and fashion.test.labels[0] == 9


def test_fashion_is_not_mnist(fashion):
    mnist = D.load_mnist()
    assert not np.array_equal(fashion.test.images[:100], mnist.test.images[:100])


def copy_of_package(tmp_path):
    """A folder holding the four real files as shipped (.gz)."""
    for name in D.FASHION_FILES:
        shutil.copyfile(D.FASHION_DIR / (name + ".gz"), tmp_path / (name + ".gz"))
    return tmp_path


def test_fashion_loads_from_another_folder_raw_or_gz(tmp_path):
    folder = copy_of_package(tmp_path)
    name = "t10k-labels-idx1-ubyte"  # one raw file beside three .gz
    (folder / name).write_bytes(gzip.decompress((folder / (name + ".gz")).read_bytes()))
    (folder / (name + ".gz")).unlink()
    assert len(D.load_fashion_mnist(folder).test) == 10_000


def test_fashion_checksum_mismatch_is_refused(tmp_path):
    folder = copy_of_package(tmp_path)
    name = "t10k-labels-idx1-ubyte"
    raw = bytearray(gzip.decompress((folder / (name + ".gz")).read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # still a valid IDX file with a plausible label: only the SHA-256 can tell
    (folder / (name + ".gz")).write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(D.DataError) as e:
        D.load_fashion_mnist(folder)
    msg = str(e.value)
    assert msg.startswith(f"{folder / (name + '.gz')} does not match the SHA-256 of {name}")
    assert D.FASHION_FILES[name] in msg and "apt-get install --reinstall dataset-fashion-mnist" in msg
    assert msg.count(". ") == 0 and "\n" not in msg  # one sentence


def test_missing_folder_says_how_to_install(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(D.DataError) as e:
        D.load_fashion_mnist(missing)
    assert str(e.value) == (f"Fashion-MNIST is not installed: {missing} is missing; "
                            "`make fetch` (or `apt-get install dataset-fashion-mnist`) installs it.")


def test_missing_file_is_named(tmp_path):
    folder = copy_of_package(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(D.DataError, match="apt-get install dataset-fashion-mnist") as e:
        D.load_fashion_mnist(folder)
    assert f"{folder / 'train-labels-idx1-ubyte.gz'} is missing" in str(e.value)


def test_registry():
    assert list(D.DATASETS) == ["mnist", "fashion"]
    assert D.DATASETS["mnist"].title == "MNIST" and D.DATASETS["fashion"].title == "Fashion-MNIST"
    assert D.DATASETS["mnist"].classes == tuple("0123456789")
    assert D.DATASETS["fashion"].classes == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert D.DATASETS["fashion"].load is D.load_fashion_mnist and D.DATASETS["mnist"].load is D.load_mnist


def test_load_dataset_by_name(fashion):
    d = D.load_dataset("fashion")
    np.testing.assert_array_equal(d.test.labels, fashion.test.labels)
    assert D.load_dataset("mnist").test.labels[0] == 7


@pytest.mark.parametrize("bad", ["Fashion", "cifar", "", None])
def test_load_dataset_refuses_unknown_names(bad):
    with pytest.raises(ValueError, match=f"got {bad!r}"):
        D.load_dataset(bad)
