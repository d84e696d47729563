"""The Colab notebook and its setup: install only what a runtime lacks, then launch with a link."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_setup():
    from lab import colab

    return colab


def runtime_with(*modules):
    return lambda name: object() if name in modules else None


@pytest.mark.parametrize("runtime, expected", [
    # Colab GPU/CPU runtime: TensorFlow, Keras, plotly, pandas and pillow are there; Gradio is not
    (runtime_with("tensorflow", "keras", "plotly", "pandas", "PIL", "tensorboard"), ["gradio"]),
    # Colab TPU runtime: JAX and Keras, no TensorFlow, no Gradio, no plotly
    (runtime_with("jax", "keras", "pandas", "PIL"), ["gradio", "plotly", "tensorflow-cpu", "tensorboard"]),
])
def test_setup_adds_only_what_the_runtime_lacks(runtime, expected):
    todo = load_setup().missing(runtime)
    assert [req.split(">")[0].split("=")[0] for req in todo] == expected
    assert not any(req.startswith("tensorflow-cpu") for req in todo) or "tensorflow-cpu" in expected


def test_notebook_first_code_cell_installs_and_launches_with_a_share_link():
    nb = json.loads((ROOT / "notebooks" / "vision_lab_colab.ipynb").read_text())
    code = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    compile(code, "first cell", "exec")  # valid Python
    assert '"-m", "lab.colab"' in code and "lab_app.launch(share=True, runs_dir=RUNS_DIR)" in code
    assert code.index("lab.colab") < code.index("import lab_app")  # install before keras is imported


def test_notebook_installs_the_published_package_without_its_dependencies_then_what_is_missing(tmp_path, monkeypatch):
    """PACKAGE set (a git URL or a wheel): pip install --no-deps (the dependencies would replace Colab's
    own TensorFlow with tensorflow-cpu), then `python -m lab.colab`, then the launch: no clone, no upload."""
    import subprocess
    import sys
    import types

    nb = json.loads((ROOT / "notebooks" / "vision_lab_colab.ipynb").read_text())
    code = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    wheel = str(tmp_path / "vision_lab-0.5.0-py3-none-any.whl")
    code = code.replace('PACKAGE = "git+https://github.com/YOUR-ORG/vision-lab.git"', f"PACKAGE = {wheel!r}")
    monkeypatch.chdir(tmp_path)
    ran, launched = [], []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    monkeypatch.setitem(sys.modules, "lab_app", types.SimpleNamespace(launch=lambda **kw: launched.append(kw)))
    exec(compile(code, "first cell", "exec"), {})
    assert ran == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", wheel], [sys.executable, "-m", "lab.colab"]]
    assert launched == [{"share": True, "runs_dir": "runs"}] and Path.cwd() == tmp_path


def test_notebook_without_a_public_repo_takes_an_uploaded_zip_of_it(tmp_path, monkeypatch):
    """REPO left as the placeholder: the cell asks for a zip of the repository, unpacks it and launches."""
    import subprocess
    import sys
    import types
    import zipfile

    nb = json.loads((ROOT / "notebooks" / "vision_lab_colab.ipynb").read_text())
    code = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def upload():  # what google.colab.files.upload() returns once the teacher picked a file
        with zipfile.ZipFile("vision-lab-main.zip", "w") as z:
            z.writestr("vision-lab-main/lab_app.py", "")
            z.writestr("vision-lab-main/lab/colab.py", "")
        return {"vision-lab-main.zip": b"..."}

    colab = types.ModuleType("google.colab")
    colab.files = types.SimpleNamespace(upload=upload)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    launched, ran = [], []
    monkeypatch.setitem(sys.modules, "lab_app", types.SimpleNamespace(launch=lambda **kw: launched.append(kw)))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd))

    exec(compile(code, "first cell", "exec"), {})
    assert Path.cwd() == tmp_path / "vision-lab" and (tmp_path / "vision-lab" / "lab_app.py").exists()
    assert ran == [[sys.executable, "-m", "lab.colab"]]  # no pip install of the placeholder address
    assert launched == [{"share": True, "runs_dir": "runs"}]  # runs on the runtime's disk unless Drive is asked for


def test_notebook_keeps_the_runs_on_google_drive_when_asked(tmp_path, monkeypatch):
    """KEEP_RUNS_ON_DRIVE = True: Drive is mounted (a stand-in for google.colab.drive) and the lab's runs
    folder is in MyDrive, so runs, datasets and the students' identities survive the runtime."""
    import subprocess
    import sys
    import types

    nb = json.loads((ROOT / "notebooks" / "vision_lab_colab.ipynb").read_text())
    code = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    assert "KEEP_RUNS_ON_DRIVE = False" in code  # off unless the teacher asks
    drive_root = tmp_path / "drive"
    code = code.replace("KEEP_RUNS_ON_DRIVE = False", "KEEP_RUNS_ON_DRIVE = True").replace("/content/drive", str(drive_root))
    (tmp_path / "vision-lab" / "scripts").mkdir(parents=True)
    (tmp_path / "vision-lab" / "lab_app.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    mounted = []

    def mount(where, **kw):  # what google.colab.drive.mount does: the Drive appears under `where`
        mounted.append(where)
        (Path(where) / "MyDrive").mkdir(parents=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    launched = []
    monkeypatch.setitem(sys.modules, "lab_app", types.SimpleNamespace(launch=lambda **kw: launched.append(kw)))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: None)

    exec(compile(code, "first cell", "exec"), {})
    runs = drive_root / "MyDrive" / "vision-lab" / "runs"
    assert mounted == [str(drive_root)] and runs.is_dir()
    assert launched == [{"share": True, "runs_dir": str(runs)}]


def test_notebook_shows_every_runs_curves_in_tensorboard():
    nb = json.loads((ROOT / "notebooks" / "vision_lab_colab.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    board = next(c for c in cells if "%tensorboard" in c)
    assert "%load_ext tensorboard" in board and "%tensorboard --logdir {RUNS_DIR}" in board  # where the runs are
    assert cells.index(board) > 0  # after the cell that defines RUNS_DIR
