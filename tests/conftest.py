"""Shared fixtures. The app's tests (test_app.py, test_browser.py) use `tiny_mnist` and
`tiny_model`: real MNIST images, few of them, so each AppTest run takes a fraction of a second.
The store's tests take `db_url`: each runs twice, on a fresh SQLite file and on a fresh database
of one throwaway PostgreSQL server started for the session (tests/pg.py).
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest
from pg import ThrowawayPostgres

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_mnist():
    """MNIST cut to 3,000 / 500 / 1,000 images (train / val / test)."""
    from mnistnet import load_mnist
    from mnistnet.data import MNIST, Split

    d = load_mnist()
    cut = lambda s, n: Split(s.images[:n], s.labels[:n])  # noqa: E731
    return MNIST(cut(d.train, 3000), cut(d.val, 500), cut(d.test, 1000))


@pytest.fixture(scope="session")
def tiny_model(tiny_mnist):
    """784-32-10 trained for 2 epochs on the tiny training set (about 85% test accuracy)."""
    from mnistnet import MLP, TrainConfig, train

    model = MLP((784, 32, 10), seed=0)
    train(model, tiny_mnist, TrainConfig(epochs=2, learning_rate=0.1))
    return model


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the whole session (started on first use)."""
    with ThrowawayPostgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The URL of an empty database of its own for this test: a SQLite file, or a new database
    on the session's PostgreSQL server (which starts only if a test asks for it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mnistnet.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the app in a real Chromium (never skipped)")
    # Tests never touch the user's own store: one SQLite file per test session, inherited by
    # the app servers and CLI processes the tests start.
    if "MNISTNET_TEST_DB_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="mnistnet-test-db-")
        os.environ["MNISTNET_TEST_DB_DIR"] = folder
        os.environ["MNISTNET_DB_URL"] = f"sqlite:///{folder}/mnistnet.sqlite3"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a failed test's item, so fixtures (the browser page) can save a screenshot."""
    report = yield
    if report.when == "call" and report.failed:
        item.failed = True
    return report
