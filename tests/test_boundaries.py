"""The engine never imports gradio: it must run in a notebook, a script or a test without the UI."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_no_engine_module_imports_gradio_in_its_source():
    offenders = []
    for path in (ROOT / "lab").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "gradio"]
    assert offenders == []


def test_importing_and_training_with_the_engine_loads_no_gradio():
    code = (
        "import sys; from lab import backend; backend.configure('tensorflow');"
        "from lab import training, jobs, runs, inference, charts, hparams;"
        "training.fit(hparams.validate(epochs=1), backend.runtime());"
        "print('gradio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("module", ["lab.images", "lab.archive", "lab.image_folder", "lab.hparams", "lab.storage", "lab.datasets", "lab.downloads",
                                    "lab.user_datasets", "lab.captures"])
def test_light_engine_modules_load_no_ui_or_ml_framework(module):
    """Reading images, zips and settings must not pay for (or depend on) TensorFlow or Gradio."""
    code = (f"import sys, {module}; "
            "print([m for m in ('gradio', 'keras', 'tensorflow', 'jax', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_models_registry_builds_every_model_for_the_digits():
    from models import MODELS

    for name, spec in MODELS.items():
        model = spec.build((8, 8, 1), 10)
        assert model.output_shape == (None, 10), name
        assert spec.description
