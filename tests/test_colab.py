"""The Colab notebook and its setup: install only what a runtime lacks, then launch with a link."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_setup():
    import importlib.util

    spec = importlib.util.spec_from_file_location("colab_setup", ROOT / "scripts" / "colab_setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runtime_with(*modules):
    return lambda name: object() if name in modules else None


@pytest.mark.parametrize("runtime, expected", [
    # Colab GPU/CPU runtime: TensorFlow, Keras, plotly, pandas and pillow are there; Gradio is not
    (runtime_with("tensorflow", "keras", "plotly", "pandas", "PIL"), ["gradio"]),
    # Colab TPU runtime: JAX and Keras, no TensorFlow, no Gradio, no plotly
    (runtime_with("jax", "keras", "pandas", "PIL"), ["gradio", "plotly", "tensorflow-cpu"]),
])
def test_setup_adds_only_what_the_runtime_lacks(runtime, expected):
    todo = load_setup().missing(runtime)
    assert [req.split(">")[0].split("=")[0] for req in todo] == expected
    assert not any(req.startswith("tensorflow-cpu") for req in todo) or "tensorflow-cpu" in expected


def test_notebook_first_code_cell_installs_and_launches_with_a_share_link():
    nb = json.loads((ROOT / "notebooks" / "vision_lab_colab.ipynb").read_text())
    code = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    compile(code, "first cell", "exec")  # valid Python
    assert "scripts/colab_setup.py" in code and "lab_app.launch(share=True)" in code
    assert code.index("colab_setup") < code.index("import lab_app")  # install before keras is imported
