"""The engine's boundaries.

It never imports gradio: it must run in a notebook, a script or a test without the UI.

Its modules form layers, lowest first. A module imports engine modules only from layers below its
own (imports inside functions count), so no engine module imports one above it and there is no
import circle of any length:

    0 foundations   images, archive, storage, charts, admission, optimizers, contract, colab,
                    eta (how long jobs take here: the queue's ETA), slots (how the class's jobs share the
                    devices and the process), job_memory (what a finished job's graphs hold, given back),
                    teacher_key (the key checked in constant time, with a budget of wrong tries),
                    process (the trainer's CPU priority, compiled programs kept across restarts)
                    (no engine imports)
    1 shared types  backend (the Keras backend, the devices, the precision; the job plan from slots),
                    dataset_base (Dataset, DatasetError, the built-ins' looks and classes),
                    pipeline (pixel scaling, tf.data batches, TrainingError, the loss), captures, inference
    2 loaders       downloads (the built-ins Keras fetches), image_folder (a student's zip), features;
                    explain (where the model looks: a heatmap beside inference's prediction);
                    feed (images kept on the device, metrics read one call late)
    3 registry      datasets (DATASETS: the built-ins, loaded through downloads)
    4 catalogues    user_datasets (a student's own, and Catalog over both), augment
    5 settings      hparams (its choices come from the registries below it); evaluation (a run's confusion
                    matrix and mistakes: numpy around one model call, on the split lab.datasets makes)
    6 comparing     compare (what a run is called, which knobs differ between runs)
    7 work          training, runs
    8 a job         job_run (one job in its worker: dataset, training, the saved and evaluated run);
                    model_card (what a download holds, its card and snippet: text about a saved run)
    9 queue         jobs (JobManager: which job trains when, and on which slot)
   10 class         classroom (the teacher's locks, preset, limits and board: it steers the queue);
                    export (a run's downloads: .keras, SavedModel, TFLite, with the model card)

models/ sits beside layer 0: the engine may import it, and it imports nothing from lab/.
A new module gets a place in LAYERS below.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = (
    ("images", "archive", "storage", "charts", "admission", "optimizers", "contract", "colab", "eta", "slots",
     "job_memory", "teacher_key", "process"),
    ("backend", "dataset_base", "pipeline", "captures", "inference"),
    ("downloads", "image_folder", "features", "explain", "feed"),
    ("datasets",),
    ("user_datasets", "augment"),
    ("hparams", "evaluation"),
    ("compare",),
    ("training", "runs"),
    ("job_run", "model_card"),
    ("jobs",),
    ("classroom", "export"),
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def imported_modules(path: Path, package: str) -> set[str]:
    """The top-level package or `package.module` names a file imports anywhere (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {".".join(a.name.split(".")[:2]) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (package + (f".{node.module}" if node.module else "")) if node.level else (node.module or "")
            parts = base.split(".")
            if len(parts) > 1:
                found.add(".".join(parts[:2]))
            else:  # from lab import training, images: each name that is a module of the package
                found |= {f"{base}.{a.name}" for a in node.names if (ROOT / base / f"{a.name}.py").exists()} or {base}
    return found


def engine_imports() -> dict[str, set[str]]:
    """lab module name -> the lab modules it imports."""
    graph = {}
    for path in sorted((ROOT / "lab").glob("*.py")):
        if path.stem != "__init__":
            graph[path.stem] = {m.split(".")[1] for m in imported_modules(path, "lab")
                                if m.startswith("lab.") and m.split(".")[1] != path.stem}
    return graph


def test_every_engine_module_has_a_layer():
    assert sorted(set(engine_imports()) - set(LAYER)) == [], "place the new module in LAYERS (and the docstring)"
    assert sorted(set(LAYER) - set(engine_imports())) == [], "a module in LAYERS no longer exists"


def test_no_engine_module_imports_one_in_its_own_layer_or_above():
    offenders = [f"lab.{m} (layer {LAYER[m]}) imports lab.{d} (layer {LAYER[d]})"
                 for m, deps in engine_imports().items() for d in sorted(deps) if m in LAYER and LAYER.get(d, 99) >= LAYER[m]]
    assert offenders == []


def test_no_import_circles_among_engine_modules():
    graph, cycles = engine_imports(), []

    def visit(module, path):
        for dep in sorted(graph.get(module, ())):
            if dep in path:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(module)

    done: set[str] = set()
    for module in graph:
        if module not in done:
            visit(module, [module])
    assert cycles == []


def test_models_import_nothing_from_the_engine():
    offenders = [f"models/{path.name}: {m}" for path in sorted((ROOT / "models").glob("*.py"))
                 for m in sorted(imported_modules(path, "models")) if m.split(".")[0] == "lab"]
    assert offenders == []


def test_nobody_in_the_engine_takes_training_error_from_training():
    """TrainingError is lab.pipeline's (lab.training re-exports it for old callers only)."""
    offenders = []
    for path in (ROOT / "lab").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "lab.training":
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name == "TrainingError"]
    assert offenders == []


def test_no_engine_module_imports_gradio_in_its_source():
    offenders = []
    for path in (ROOT / "lab").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "gradio"]
    assert offenders == []


@pytest.mark.slow
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
                                    "lab.user_datasets", "lab.captures", "lab.dataset_base", "lab.optimizers", "lab.slots",
                                    "lab.job_memory"])
def test_light_engine_modules_load_no_ui_or_ml_framework(module):
    """Reading images, zips and settings must not pay for (or depend on) TensorFlow or Gradio."""
    code = (f"import sys, {module}; "
            "print([m for m in ('gradio', 'keras', 'tensorflow', 'jax', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_models_registry_builds_every_model_for_the_digits():
    from models import MODELS

    for name, spec in MODELS.items():
        model = spec.build((8, 8, 1), 10)
        assert model.output_shape == (None, 10), name
        assert spec.description


def test_page_handlers_answer_with_component_dicts_not_long_tuples():
    """Handlers return {component: update}; a positional tuple longer than three (or one with a
    *spread, whose length nobody can see) is how outputs get mixed up (DESIGN.md, style 6)."""
    long = []
    for path in [*sorted((ROOT / "components").glob("*.py")), ROOT / "lab_app.py"]:
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.Lambda):
                returns = [fn.body]
            elif isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                returns = [n.value for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None]
            else:
                continue
            for value in returns:
                if isinstance(value, ast.Tuple) and (len(value.elts) > 3 or any(isinstance(e, ast.Starred) for e in value.elts)):
                    long.append(f"{path.name}:{value.lineno} returns a tuple of {len(value.elts)}")
    assert not long, long


def test_importing_the_app_leaves_the_backend_choice_open():
    """`import lab_app` (a notebook cell, the `--backend` flag) must not import keras: keras fixes its
    backend when first imported, and lab_app.launch() chooses it after (JAX on a CPU, say)."""
    code = "import sys, lab_app; print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("KERAS_BACKEND",)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
