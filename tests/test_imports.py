"""The house rules on imports: the core stays light, and the lab's cold start loads no Dask."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sqlalchemy", "dask", "distributed", "streamlit", "plotly")


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.rsplit("MODULES", 1)[1].split())


def test_import_mnistnet_loads_no_store_cluster_or_ui():
    assert not loaded_after("import mnistnet") & set(HEAVY)


def test_predict_from_the_cli_loads_no_store_or_cluster(tmp_path, tiny_model):
    from mnistnet import load_mnist, save_model

    path = save_model(tiny_model, tmp_path / "m.npz")
    from PIL import Image
    Image.fromarray(load_mnist().test.images[0]).save(tmp_path / "d.png")
    argv = ["mnistnet", "predict", str(path), str(tmp_path / "d.png")]
    code = (f"import sys, runpy\nsys.argv = {argv!r}\n"
            "try:\n    runpy.run_module('mnistnet', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n")
    assert not loaded_after(code) & set(HEAVY)


@pytest.mark.parametrize("module", ["ui.views", "ui.session", "ui.jobs", "ui.runs"])
def test_the_lab_imports_dask_only_when_it_trains(module):
    assert not loaded_after(f"import {module}") & {"dask", "distributed"}
