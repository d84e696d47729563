"""lab.backend: finding the hardware and choosing the Keras backend, with made-up facts.

Nothing here initialises a device; the real multi-device runs are in test_multidevice.py.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys

import pytest

from lab import backend
from lab.backend import Choice, Facts, Runtime

TPU_VARS = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")


# -- choose(): the decision -------------------------------------------------------------
def test_cpu_only_machine_gets_jax_where_installed_else_tensorflow():
    choice = backend.choose("auto", Facts(has_tensorflow=True, has_jax=True))
    assert choice == Choice("jax", choice.reason)
    assert "CPU" in choice.reason and "faster" in choice.reason
    assert backend.choose("auto", Facts(has_tensorflow=True, has_jax=False)).backend == "tensorflow"


def test_tpu_with_jax_installed_gets_jax():
    choice = backend.choose("auto", Facts(tpu=True, has_tensorflow=True, has_jax=True))
    assert choice.backend == "jax"
    assert "TPU" in choice.reason


def test_tpu_wins_over_gpu_when_both_are_reported():
    assert backend.choose("auto", Facts(tpu=True, gpu=True, has_jax=True)).backend == "jax"


def test_tpu_without_jax_falls_back_to_tensorflow():
    assert backend.choose("auto", Facts(tpu=True, has_tensorflow=True, has_jax=False)).backend == "tensorflow"


def test_gpu_gets_tensorflow_when_tensorflow_sees_it_even_with_jax_installed():
    choice = backend.choose("auto", Facts(gpu=True, has_tensorflow=True, has_jax=True, tensorflow_gpu=True, jax_gpu=True))
    assert choice.backend == "tensorflow"
    assert "GPU" in choice.reason


def test_gpu_that_only_jax_sees_gets_jax():
    """The H200 of issue 18: tensorflow-cpu for tf.data, JAX with CUDA. TensorFlow would train on the CPU."""
    choice = backend.choose("auto", Facts(gpu=True, has_tensorflow=True, has_jax=True, jax_gpu=True))
    assert choice.backend == "jax"
    assert "GPU" in choice.reason and "TensorFlow cannot" in choice.reason


# Every combination of device and installed frameworks: (device, frameworks) -> the backend auto picks.
# gpu:tf = TensorFlow has CUDA there, gpu:jax = JAX has its CUDA plugin, gpu:both, gpu:none = only the driver.
AUTO = {
    "cpu":      {"tf": "tensorflow", "jax": "jax", "both": "jax"},
    "gpu:tf":   {"tf": "tensorflow", "jax": "jax", "both": "tensorflow"},
    "gpu:jax":  {"tf": "tensorflow", "jax": "jax", "both": "jax"},
    "gpu:both": {"tf": "tensorflow", "jax": "jax", "both": "tensorflow"},
    "gpu:none": {"tf": "tensorflow", "jax": "jax", "both": "jax"},
    "tpu":      {"tf": "tensorflow", "jax": "jax", "both": "jax"},
}


@pytest.mark.parametrize("device, frameworks", [(d, f) for d in AUTO for f in ("tf", "jax", "both", "none")])
def test_auto_for_every_device_and_framework(device, frameworks):
    has_tf, has_jax = frameworks in ("tf", "both"), frameworks in ("jax", "both")
    sees = device.partition(":")[2]
    facts = Facts(tpu=device == "tpu", gpu=device.startswith("gpu"), has_tensorflow=has_tf, has_jax=has_jax,
                  tensorflow_gpu=has_tf and sees in ("tf", "both"), jax_gpu=has_jax and sees in ("jax", "both"))
    if frameworks == "none":
        with pytest.raises(RuntimeError, match="requirements"):
            backend.choose("auto", facts)
        return
    choice = backend.choose("auto", facts)
    assert choice.backend == AUTO[device][frameworks]
    on_accelerator = (device == "tpu" and choice.backend == "jax") or \
        (device.startswith("gpu") and (facts.tensorflow_gpu if choice.backend == "tensorflow" else facts.jax_gpu))
    assert ("CPU" in choice.reason) != on_accelerator, choice.reason  # the reason says where it trains


def test_jax_alone_is_used_when_tensorflow_is_missing():
    choice = backend.choose("auto", Facts(has_tensorflow=False, has_jax=True))
    assert choice.backend == "jax"
    assert "not installed" in choice.reason


@pytest.mark.parametrize(
    "requested, facts",
    [
        ("jax", Facts(has_tensorflow=True, has_jax=True)),  # CPU machine, JAX asked for
        ("tensorflow", Facts(tpu=True, has_tensorflow=True, has_jax=True)),  # TPU, TF asked for
        ("jax", Facts(gpu=True, has_tensorflow=True, has_jax=True)),
    ],
)
def test_explicit_backend_overrides_detection(requested, facts):
    choice = backend.choose(requested, facts)
    assert choice.backend == requested
    assert f"--backend {requested}" in choice.reason


@pytest.mark.parametrize(
    "requested, facts",
    [
        ("jax", Facts(tpu=True, has_tensorflow=True, has_jax=False)),
        ("tensorflow", Facts(has_tensorflow=False, has_jax=True)),
    ],
)
def test_asking_for_a_backend_that_is_not_installed_is_a_clear_error(requested, facts):
    with pytest.raises(RuntimeError, match=rf"--backend {requested} .* {requested} is not installed"):
        backend.choose(requested, facts)


@pytest.mark.parametrize("name", ["torch", "TensorFlow", "", "jax "])
def test_invalid_backend_name_is_a_value_error(name, monkeypatch):
    # the name is checked before any hardware is looked at
    monkeypatch.setattr(backend, "gather_facts", lambda: pytest.fail("gathered facts for an invalid name"))
    with pytest.raises(ValueError, match="auto, tensorflow, jax"):
        backend.choose(name)


def test_neither_framework_installed_points_at_requirements():
    with pytest.raises(RuntimeError, match="requirements"):
        backend.choose("auto", Facts(tpu=True, gpu=True, has_tensorflow=False, has_jax=False))


def test_choose_gathers_facts_when_none_are_given(monkeypatch):
    monkeypatch.setattr(backend, "gather_facts", lambda: Facts(tpu=True, has_tensorflow=True, has_jax=True))
    assert backend.choose().backend == "jax"
    monkeypatch.setattr(backend, "gather_facts", lambda: Facts(gpu=True, tensorflow_gpu=True, has_tensorflow=True, has_jax=True))
    assert backend.choose().backend == "tensorflow"


# -- configure(): sets KERAS_BACKEND, refuses once keras runs another backend ------------
@pytest.fixture
def clean_choice(monkeypatch):
    """configure() writes KERAS_BACKEND and the module's _CHOICE: put both back afterwards."""
    import os

    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))
    monkeypatch.setattr(backend, "_CHOICE", None)
    return monkeypatch


def test_configure_sets_keras_backend_before_keras_is_imported(clean_choice):
    import os

    clean_choice.delitem(sys.modules, "keras", raising=False)  # as in a fresh process
    choice = backend.configure("jax", Facts(has_tensorflow=True, has_jax=True))
    assert choice.backend == "jax"
    assert os.environ["KERAS_BACKEND"] == "jax"
    assert backend._CHOICE == choice


def test_configure_refuses_a_different_backend_once_keras_is_imported(clean_choice):
    import os

    import keras

    running = keras.backend.backend()
    other = "jax" if running == "tensorflow" else "tensorflow"
    with pytest.raises(RuntimeError, match="restart"):
        backend.configure(other, Facts(has_tensorflow=True, has_jax=True))
    assert os.environ["KERAS_BACKEND"] == running  # untouched by the refused call
    assert backend._CHOICE is None
    # the backend keras already runs is accepted
    assert backend.configure(running, Facts(has_tensorflow=True, has_jax=True)).backend == running


# -- gather_facts(): reading the machine ---------------------------------------------------
@pytest.fixture
def bare_machine(monkeypatch):
    """No TPU variables, no /dev/accel*, no NVIDIA driver; both frameworks installed."""
    for k in TPU_VARS:
        monkeypatch.delenv(k, raising=False)
    state = {"accel": [], "vfio": [], "paths": set(), "which": {}, "missing": set(), "present": set()}
    real_glob, real_exists = backend.glob.glob, backend.os.path.exists
    real_find_spec = backend.importlib.util.find_spec

    def fake_glob(pattern, *a, **kw):
        fakes = {"/dev/accel*": state["accel"], "/dev/vfio/[0-9]*": state["vfio"]}
        return list(fakes[pattern]) if pattern in fakes else real_glob(pattern, *a, **kw)

    def fake_exists(path):
        return path in state["paths"] if str(path).startswith("/dev/") else real_exists(path)

    def fake_find_spec(name, *a, **kw):
        if name in state["present"]:
            return importlib.machinery.ModuleSpec(name, None)
        if name in state["missing"] or name == "libtpu":
            return None
        return real_find_spec(name, *a, **kw)

    monkeypatch.setattr(backend.glob, "glob", fake_glob)
    monkeypatch.setattr(backend.os.path, "exists", fake_exists)
    monkeypatch.setattr(backend.shutil, "which", lambda cmd, *a, **kw: state["which"].get(cmd))
    monkeypatch.setattr(backend.importlib.util, "find_spec", fake_find_spec)
    return state


def test_bare_cpu_machine_has_no_accelerator(bare_machine):
    facts = backend.gather_facts()
    assert facts == Facts(tpu=False, gpu=False, has_tensorflow=True, has_jax=True, why=())
    assert backend.choose("auto", facts).backend == "jax"


@pytest.mark.parametrize("var, value", [("TPU_NAME", "local"), ("COLAB_TPU_ADDR", "10.0.0.2:8470"),
                                        ("TPU_ACCELERATOR_TYPE", "v5litepod-1")])
def test_tpu_environment_variables_mean_a_tpu(bare_machine, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    facts = backend.gather_facts()
    assert facts.tpu and not facts.gpu
    assert any(var in w for w in facts.why)
    assert backend.choose("auto", facts).backend == "jax"


def test_empty_tpu_variable_is_not_a_tpu(bare_machine, monkeypatch):
    monkeypatch.setenv("TPU_NAME", "")
    assert backend.gather_facts().tpu is False


def test_accel_device_files_mean_a_tpu(bare_machine):
    bare_machine["accel"] = ["/dev/accel0", "/dev/accel1", "/dev/accel2", "/dev/accel3"]
    facts = backend.gather_facts()
    assert facts.tpu
    assert "/dev/accel0" in facts.why[0] and "/dev/accel3" not in facts.why[0]  # two named at most


def test_vfio_devices_mean_a_tpu_only_where_libtpu_is_installed(bare_machine):
    bare_machine["vfio"] = ["/dev/vfio/0"]
    assert backend.gather_facts().tpu is False  # VFIO alone is any passed-through device
    bare_machine["present"].add("libtpu")
    facts = backend.gather_facts()
    assert facts.tpu and "/dev/vfio/0" in facts.why[0]


def test_accel_files_beside_an_nvidia_driver_are_a_gpu_not_a_tpu(bare_machine):
    bare_machine["accel"] = ["/dev/accel0"]
    bare_machine["paths"].add("/dev/nvidia0")
    facts = backend.gather_facts()
    assert facts.gpu and not facts.tpu


@pytest.mark.parametrize("how", ["device file", "nvidia-smi"])
def test_nvidia_driver_means_a_gpu(bare_machine, how):
    if how == "device file":
        bare_machine["paths"].add("/dev/nvidia0")
    else:
        bare_machine["which"]["nvidia-smi"] = "/usr/bin/nvidia-smi"
    facts = backend.gather_facts()
    assert facts.gpu and not facts.tpu
    assert any("GPU" in w for w in facts.why)


@pytest.mark.parametrize("tf_cuda, plugin, expect", [(True, None, "tensorflow"), (False, "jax_cuda12_plugin", "jax"),
                                                     (False, "jax_plugins.xla_cuda13", "jax"),
                                                     (True, "jax_cuda12_plugin", "tensorflow")])
def test_which_framework_sees_the_gpu_decides(bare_machine, monkeypatch, tf_cuda, plugin, expect):
    bare_machine["paths"].add("/dev/nvidia0")
    monkeypatch.setattr(backend, "_tensorflow_has_cuda", lambda: tf_cuda)
    if plugin:
        bare_machine["present"].add(plugin)
    facts = backend.gather_facts()
    assert (facts.tensorflow_gpu, facts.jax_gpu) == (tf_cuda, plugin is not None)
    assert backend.choose("auto", facts).backend == expect
    assert any(("TensorFlow" if tf_cuda else "JAX") + " " in w for w in facts.why)


def test_a_gpu_neither_framework_can_use_trains_on_the_cpu_and_says_so(bare_machine, monkeypatch):
    bare_machine["paths"].add("/dev/nvidia0")
    monkeypatch.setattr(backend, "_tensorflow_has_cuda", lambda: False)
    facts = backend.gather_facts()
    assert not facts.tensorflow_gpu and not facts.jax_gpu
    assert any("neither" in w for w in facts.why)
    assert "neither framework" in backend.choose("auto", facts).reason


def test_tensorflow_cpu_package_has_no_cuda(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)  # only tensorflow-cpu is installed
    assert backend._tensorflow_has_cuda() is False


@pytest.mark.parametrize("missing, expect", [({"jax"}, (True, False)), ({"tensorflow"}, (False, True)),
                                             ({"jax", "tensorflow"}, (False, False))])
def test_installed_frameworks_are_found_by_import_spec(bare_machine, missing, expect):
    bare_machine["missing"] = missing
    facts = backend.gather_facts()
    assert (facts.has_tensorflow, facts.has_jax) == expect


def test_tpu_without_jax_installed_still_trains_on_tensorflow(bare_machine, monkeypatch):
    monkeypatch.setenv("TPU_NAME", "local")
    bare_machine["missing"] = {"jax"}
    assert backend.choose("auto", backend.gather_facts()).backend == "tensorflow"


def test_real_gather_facts_sees_this_venv():
    facts = backend.gather_facts()  # tensorflow (requirements.txt), jax (requirements-dev.txt)
    assert facts.has_tensorflow and facts.has_jax


# -- Runtime and the CPU split -------------------------------------------------------------
@pytest.mark.parametrize("value, expect", [(None, 1), ("2", 2), ("8", 8), ("0", 1), ("-3", 1), ("two", 1), ("", 1)])
def test_cpu_split_reads_the_environment(monkeypatch, value, expect):
    if value is None:
        monkeypatch.delenv(backend.CPU_DEVICES_ENV, raising=False)
    else:
        monkeypatch.setenv(backend.CPU_DEVICES_ENV, value)
    assert backend._cpu_split() == expect


def test_runtime_reports_replicas_and_a_summary():
    many = Runtime("jax", "TPU v5 lite", 4, None, "a TPU was found")
    assert many.replicas == 4
    assert "4 × TPU v5 lite" in many.summary() and "data-parallel over 4 replicas" in many.summary()
    assert many.describe()["replicas"] == 4 and many.describe()["reason"] == "a TPU was found"
    one = Runtime("tensorflow", "CPU", 1)
    assert one.replicas == 1
    assert "data-parallel" not in one.summary()


def test_runtime_scope_is_the_strategy_scope_when_there_is_one():
    entered = []

    class FakeStrategy:
        @contextlib.contextmanager
        def scope(self):
            entered.append(True)
            yield

    with Runtime("tensorflow", "CPU", 2, FakeStrategy()).scope():
        pass
    assert entered == [True]
    with Runtime("jax", "cpu", 2).scope():  # JAX spreads through keras.distribution instead
        pass
    assert entered == [True]


# -- precision policy and hints --------------------------------------------------------------
@pytest.mark.parametrize("kind, capability, policy", [
    ("TPU v5 lite", None, "mixed_bfloat16"),
    ("Tesla T4", (7, 5), "mixed_float16"),
    ("NVIDIA H100", (9, 0), "mixed_float16"),
    ("Tesla K80", (3, 7), "float32"),
    ("CPU", None, "float32"),
    ("cpu", None, "float32"),
])
def test_precision_policy_follows_the_device(kind, capability, policy):
    chosen, why = backend.precision_policy(kind, capability)
    assert chosen == policy and why.startswith(policy)


def test_a_gpu_of_unknown_capability_stays_float32_and_says_why():
    chosen, why = backend.precision_policy("NVIDIA H100 80GB HBM3", None)
    assert chosen == "float32" and "unknown" in why and "CPU" not in why


@pytest.mark.parametrize("backend_name, fact, expected", [
    ("jax", "9.0", (9, 0)),          # JAX GPU devices: a string attribute
    ("jax", None, None),             # an older jaxlib without it
    ("tensorflow", (8, 6), (8, 6)),  # TensorFlow's device details: a tuple
])
def test_gpu_capability_is_read_from_either_backend(monkeypatch, backend_name, fact, expected):
    import types

    if backend_name == "jax":
        device = types.SimpleNamespace(**({"compute_capability": fact} if fact else {}))
        monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=lambda: [device]))
    else:
        import tensorflow as tf

        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: ["GPU:0"])
        monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda d: {"compute_capability": fact})
    rt = Runtime(backend_name, "NVIDIA H100 80GB HBM3", 1)
    assert backend._gpu_capability(rt) == expected
    policy = backend.precision_policy(rt.device_kind, backend._gpu_capability(rt))[0]
    assert policy == ("mixed_float16" if expected else "float32")


def test_precision_override_and_its_validation():
    assert backend.precision_policy("CPU", None, "mixed_bfloat16")[0] == "mixed_bfloat16"
    with pytest.raises(ValueError, match="VISION_LAB_PRECISION"):
        backend.precision_policy("CPU", None, "float8")


def cpu_runtime(backend_name="tensorflow"):
    return Runtime(backend_name, "CPU", 1)


@pytest.mark.parametrize("facts, backend_name, env, words", [
    (Facts(tpu=True), "jax", {}, "jax[tpu]"),
    (Facts(tpu=True), "tensorflow", {}, "--backend jax"),
    (Facts(gpu=True), "tensorflow", {}, "tensorflow[and-cuda]"),
    (Facts(gpu=True), "jax", {}, "jax[cuda12]"),
    (Facts(), "tensorflow", {"COLAB_RELEASE_TAG": "release-colab-2026"}, "Change runtime type"),
])
def test_hints_say_what_to_change_when_an_accelerator_is_missing(facts, backend_name, env, words):
    (hint,) = backend.hints(facts, cpu_runtime(backend_name), env)
    assert words in hint


def test_no_hint_when_all_is_well():
    assert backend.hints(Facts(), cpu_runtime(), {}) == []  # a laptop: the CPU is expected
    assert backend.hints(Facts(gpu=True), Runtime("tensorflow", "Tesla T4", 1), {}) == []


def test_the_summary_names_a_mixed_policy():
    rt = Runtime("jax", "TPU v5 lite", 1, policy="mixed_bfloat16")
    assert "mixed_bfloat16" in rt.summary() and "mixed" not in cpu_runtime().summary()


def test_jax_gets_the_cpu_split_through_xla_flags(monkeypatch, clean_choice):
    """VISION_LAB_CPU_DEVICES splits the host for JAX as for TensorFlow (when JAX is not started yet)."""
    import os

    monkeypatch.setenv(backend.CPU_DEVICES_ENV, "2")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1")
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    import keras

    if keras.backend.backend() != "jax":
        monkeypatch.delitem(sys.modules, "keras")  # configure() refuses another backend once keras is imported
    backend.configure("jax", Facts(has_tensorflow=True, has_jax=True))
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=2"
