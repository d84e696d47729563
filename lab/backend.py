"""Pick the Keras backend before Keras is imported, and spread training over local devices.

`auto` picks the framework that sees the accelerator: TPU -> JAX (Colab's TPU runtime ships JAX,
not TensorFlow); GPU -> TensorFlow where TensorFlow has CUDA, else JAX where JAX has it (a machine
with tensorflow-cpu and jax[cuda]); CPU -> JAX where installed (bench/first_point.py: the default
job, start to saved run, about 1.7× faster than TensorFlow on 2 CPU cores), else TensorFlow.
`configure()` must run before the first `import keras`; `runtime()` then reports what was
found and owns the distribution (a tf.distribute strategy or a keras.distribution layout), with
how the class's jobs share the devices (lab.slots.job_plan) recorded on it.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field

from lab import slots

BACKENDS = ("auto", "tensorflow", "jax")
BACKEND_ENV = "VISION_LAB_BACKEND"  # the default for --backend (auto); tests pin it
# Tests and CPU demos split the host into N logical devices to exercise the multi-device path.
CPU_DEVICES_ENV = "VISION_LAB_CPU_DEVICES"


@dataclass(frozen=True)
class Facts:
    """What the machine offers, gathered without importing a framework (tests make these up)."""

    tpu: bool = False
    gpu: bool = False
    has_tensorflow: bool = True
    has_jax: bool = False
    why: tuple[str, ...] = ()
    tensorflow_gpu: bool = False  # a GPU is present and TensorFlow is built to use it (CUDA found)
    jax_gpu: bool = False  # a GPU is present and JAX has its CUDA plugin


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def gather_facts() -> Facts:
    """Look for a TPU or GPU the cheap way: device files, environment, installed packages."""
    why = []
    tpu_env = [k for k in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE") if os.environ.get(k)]
    gpu = os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None
    # TPU v2-v4 VMs expose /dev/accel*, but so do NVIDIA drivers 570+ on Blackwell GPUs;
    # TPU v5e/v6e VMs expose /dev/vfio/N, which only means a TPU where libtpu is installed.
    accel = [] if gpu else glob.glob("/dev/accel*")
    vfio = glob.glob("/dev/vfio/[0-9]*") if importlib.util.find_spec("libtpu") is not None else []
    tpu = bool(tpu_env or accel or vfio)
    if tpu:
        why.append("TPU: " + ", ".join(tpu_env + (accel + vfio)[:2]))
    has_tensorflow = _has_module("tensorflow")
    has_jax = _has_module("jax")
    tensorflow_gpu = gpu and has_tensorflow and _tensorflow_has_cuda()
    jax_gpu = gpu and has_jax and any(_has_module(m) for m in JAX_CUDA_PLUGINS)
    if gpu:
        sees = [name for name, yes in (("TensorFlow", tensorflow_gpu), ("JAX", jax_gpu)) if yes]
        why.append("GPU: NVIDIA driver present; " + (" and ".join(sees) + " can use it" if sees else
                                                     "neither TensorFlow nor JAX has CUDA"))
    return Facts(tpu=tpu, gpu=gpu, has_tensorflow=has_tensorflow, has_jax=has_jax, why=tuple(why),
                 tensorflow_gpu=tensorflow_gpu, jax_gpu=jax_gpu)


# `pip install "jax[cuda12]"` (or cuda13) brings one of these; without them JAX sees only the CPU.
JAX_CUDA_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # "a.b" whose parent "a" is missing
        return False


def _tensorflow_has_cuda() -> bool:
    """TensorFlow can use an NVIDIA GPU: the full `tensorflow` package (not tensorflow-cpu) and
    cuDNN, from pip (`tensorflow[and-cuda]`) or the system (Colab's GPU runtime)."""
    import ctypes.util
    from importlib import metadata

    try:
        metadata.distribution("tensorflow")
    except metadata.PackageNotFoundError:
        return False  # tensorflow-cpu (or tensorflow-macos): no CUDA build
    return _has_module("nvidia.cudnn") or ctypes.util.find_library("cudnn") is not None \
        or bool(glob.glob("/usr/local/cuda*/lib64/libcudnn.so*") + glob.glob("/usr/lib/x86_64-linux-gnu/libcudnn.so*"))


def choose(requested: str = "auto", facts: Facts | None = None) -> Choice:
    """Decide the Keras backend. `requested` is "auto", "tensorflow" or "jax"."""
    if requested not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, not {requested!r}")
    facts = facts or gather_facts()
    if requested != "auto":
        missing = {"tensorflow": not facts.has_tensorflow, "jax": not facts.has_jax}[requested]
        if missing:
            raise RuntimeError(f"--backend {requested} was asked for but {requested} is not installed")
        return Choice(requested, f"--backend {requested} was asked for")
    if facts.tpu and facts.has_jax:
        return Choice("jax", "a TPU was found, and JAX drives TPUs best")
    if facts.gpu and facts.tensorflow_gpu:
        return Choice("tensorflow", "found a GPU that TensorFlow can use; TensorFlow is the default there")
    if facts.gpu and facts.jax_gpu:
        return Choice("jax", "found a GPU that JAX can use and TensorFlow cannot (no CUDA build of TensorFlow here)")
    lost = "a GPU that neither framework can use, so " if facts.gpu else ""
    if facts.has_jax:
        why = "TensorFlow is not installed, JAX is" if not facts.has_tensorflow else \
            "on the CPU JAX trains the default job about 1.7× faster than TensorFlow, start to saved run"
        return Choice("jax", f"found {lost or 'no TPU or GPU, so '}the CPU: {why}")
    if facts.has_tensorflow:
        return Choice("tensorflow", f"found {lost or 'no TPU or GPU, so '}the CPU (JAX is not installed)")
    raise RuntimeError("neither TensorFlow nor JAX is installed: pip install -r requirements.txt")


def configure(requested: str = "auto", facts: Facts | None = None) -> Choice:
    """Choose the backend and set KERAS_BACKEND. Call before anything imports keras."""
    choice = choose(requested, facts)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != choice.backend:
            raise RuntimeError(
                f"keras was imported with the {keras.backend.backend()} backend before the lab "
                f"could choose {choice.backend}; restart the Python process (Colab: Runtime > Restart)"
            )
    os.environ["KERAS_BACKEND"] = choice.backend
    if choice.backend == "jax" and _cpu_split() > 1 and "jax" not in sys.modules:
        # JAX splits the host the same way, through XLA's flag, read when its CPU backend starts.
        flag = "--xla_force_host_platform_device_count"
        if flag not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}={_cpu_split()}".strip()
    global _CHOICE
    _CHOICE = choice
    return choice


_CHOICE: Choice | None = None
_RUNTIME: "Runtime | None" = None
_LOCK = threading.Lock()


@dataclass
class Runtime:
    """The devices training runs on, and how a model is spread over them.

    The process has one (`runtime()`: every device, a job spread over them all); lab.slots.job_slots
    gives the JobManager's workers theirs: that one, or one pinned to each device (lab.slots.device_runtimes).
    """

    backend: str
    device_kind: str
    device_count: int
    strategy: object = None  # tf.distribute.Strategy on TensorFlow, else None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    policy: str = "float32"  # the Keras dtype policy models are built under
    hints: list[str] = field(default_factory=list)  # what to change when an accelerator was expected
    distribution: object = None  # JAX: the keras.distribution jobs train under (None: JAX's default device)
    device: object = None  # pinned to one device: a jax.Device, or a TensorFlow device name ("/device:GPU:1")
    device_index: int | None = None  # which of the machine's devices (0-based) when pinned to one
    device_count_of_machine: int = 1  # with device_index: how many devices the machine has
    job_mode: str = "spread"  # how the class's jobs share the devices: "spread" (one job over all) or "device"
    jobs_per_device: int = 1  # jobs training at once on each device ("device") or on the whole spread

    @property
    def replicas(self) -> int:
        return self.device_count if self.device_count > 1 else 1

    @property
    def jobs_at_once(self) -> int:
        """How many jobs train at once under this plan (the JobManager's slots)."""
        return self.jobs_per_device * (self.device_count if self.job_mode == "device" else 1)

    def scope(self):
        """Context in which models and optimizers are created (a strategy scope on TF; on one device
        of several, that device; on JAX, the distribution)."""
        if self.strategy is not None:
            return self.strategy.scope()
        return self._placement()

    def _placement(self):
        if self.backend == "jax" and self.distribution is not None:
            return self.distribution.scope()  # keras.distribution: thread-local, restored on exit
        if self.backend == "tensorflow" and self.device is not None:
            import tensorflow as tf

            return tf.device(self.device)  # thread-local too
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def job_scope(self):
        """Around a whole job, in the thread that trains it: Keras' dtype policy and distribution
        and TensorFlow's device scope belong to the thread that set them (Keras keeps its global
        state per thread), so a worker thread gets them here, not from whichever thread called
        `runtime()` first. Variables, the train step and the evaluation then run on this runtime's
        device(s)."""
        import keras

        before = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(self.policy)
        try:
            with self._placement():
                yield self
        finally:
            keras.mixed_precision.set_global_policy(before)

    def summary(self) -> str:
        if self.device_index is not None:
            devices = f"{self.device_kind} (device {self.device_index + 1} of {self.device_count_of_machine})"
        else:
            devices = f"{self.device_count} × {self.device_kind}"
        if self.job_mode == "device" and self.device_index is None:
            spread = f", one job per device ({self.jobs_at_once} at once)"
        else:
            spread = f", data-parallel over {self.replicas} replicas" if self.replicas > 1 else ""
            if self.jobs_per_device > 1 and self.device_index is None:
                spread += f", {self.jobs_at_once} jobs at once"
        precision = f" · {self.policy}" if self.policy != "float32" else ""
        return f"{devices} · Keras {self.backend} backend{spread}{precision}"

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "device_kind": self.device_kind,
            "device_count": self.device_count,
            "replicas": 1 if self.job_mode == "device" else self.replicas,  # what one job is spread over
            "reason": self.reason,
            "policy": self.policy,
            "notes": list(self.notes),
            "hints": list(self.hints),
            "job_mode": self.job_mode,
            "jobs_at_once": self.jobs_at_once,
        }


def runtime() -> Runtime:
    """Initialise devices once (process-wide hardware state) and return the Runtime."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is None:
            if _CHOICE is None and "KERAS_BACKEND" not in os.environ:
                configure("auto")
            import keras

            backend = keras.backend.backend()
            reason = _CHOICE.reason if _CHOICE else f"KERAS_BACKEND={backend}"
            facts = gather_facts()
            rt = _init_jax(reason) if backend == "jax" else _init_tensorflow(reason, facts)
            rt.policy, why = precision_policy(rt.device_kind, _gpu_capability(rt), os.environ.get(PRECISION_ENV))
            keras.mixed_precision.set_global_policy(rt.policy)
            rt.notes.append(why)
            rt.hints = hints(facts, rt, os.environ)
            rt.job_mode, rt.jobs_per_device, why = slots.job_plan(rt, os.environ)  # how the class's jobs share them
            if rt.job_mode == "device":  # jobs are not spread: the panel should not say they are
                rt.notes = [n for n in rt.notes if not n.startswith("keras.distribution.DataParallel")]
            rt.notes.append(why)
            _RUNTIME = rt
        return _RUNTIME


PRECISION_ENV = "VISION_LAB_PRECISION"  # float32, mixed_float16 or mixed_bfloat16: overrides the choice


def precision_policy(device_kind: str, gpu_capability: tuple[int, int] | None = None,
                     override: str | None = None) -> tuple[str, str]:
    """The Keras dtype policy for a device, and why.

    TPUs compute in bfloat16 natively; NVIDIA GPUs from Volta (compute capability 7.0) on have
    float16 tensor cores; CPUs gain nothing from lower precision.
    """
    if override:
        if override not in ("float32", "mixed_float16", "mixed_bfloat16"):
            raise ValueError(f"{PRECISION_ENV} must be float32, mixed_float16 or mixed_bfloat16, not {override!r}")
        return override, f"{override} ({PRECISION_ENV})"
    kind = device_kind.lower()
    if "tpu" in kind:
        return "mixed_bfloat16", "mixed_bfloat16: TPUs compute in bfloat16"
    if gpu_capability is not None:
        if gpu_capability >= (7, 0):
            return "mixed_float16", f"mixed_float16: the GPU (compute capability {gpu_capability[0]}.{gpu_capability[1]}) has float16 tensor cores"
        return "float32", "float32: this GPU is older than Volta and gains nothing from float16"
    if kind not in ("cpu", ""):
        return "float32", (f"float32: the {device_kind}'s compute capability is unknown, so float16 is not "
                           f"risked (set {PRECISION_ENV}=mixed_float16 to try it)")
    return "float32", "float32: CPUs gain nothing from lower precision"


def hints(facts: Facts, rt: "Runtime", environ) -> list[str]:
    """What to change when a TPU or GPU was expected but training runs on the CPU."""
    if rt.device_kind.lower() not in ("cpu", ""):
        return []
    if facts.tpu:
        fix = "pip install -U 'jax[tpu]' and restart" if rt.backend == "jax" else \
            "start with --backend jax (JAX drives TPUs; the TensorFlow backend needs tensorflow-tpu)"
        return [f"A TPU is present but {rt.backend} sees only the CPU: {fix}."]
    if facts.gpu:
        fix = "pip install 'tensorflow[and-cuda]' (tensorflow-cpu cannot use a GPU)" if rt.backend == "tensorflow" \
            else "pip install -U 'jax[cuda12]'"
        return [f"An NVIDIA GPU is present but {rt.backend} sees only the CPU: {fix}, then restart."]
    if environ.get("COLAB_RELEASE_TAG") or environ.get("COLAB_GPU") is not None:
        return ["Colab gave this notebook no GPU or TPU: Runtime > Change runtime type > a GPU or a TPU, "
                "then run the first cell again."]
    return []


def _gpu_capability(rt: "Runtime") -> tuple[int, int] | None:
    """The first GPU's compute capability as (major, minor), from whichever backend drives it."""
    if "cpu" in rt.device_kind.lower() or "tpu" in rt.device_kind.lower():
        return None
    if rt.backend == "jax":
        import jax

        # JAX GPU devices carry it as a string such as "9.0" (jaxlib 0.4.26 and later).
        return parse_capability(getattr(jax.devices()[0], "compute_capability", None))
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
    return parse_capability(details.get("compute_capability"))


def parse_capability(value) -> tuple[int, int] | None:
    """(major, minor) from "9.0", (9, 0) or None (unknown)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, str):
        major, _, minor = value.strip().partition(".")
        if major.isdigit():
            return int(major), int(minor) if minor.isdigit() else 0
    return None


def _cpu_split() -> int:
    try:
        return max(1, int(os.environ.get(CPU_DEVICES_ENV, "1")))
    except ValueError:
        return 1


def _init_tensorflow(reason: str, facts: Facts | None = None) -> Runtime:
    import tensorflow as tf

    notes = []
    if facts is not None and facts.tpu:
        try:  # works where tensorflow-tpu is installed; otherwise fall through to GPU/CPU with a hint
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
            return Runtime("tensorflow", "TPU", strategy.num_replicas_in_sync, strategy, reason, notes)
        except Exception as e:  # noqa: BLE001 - any failure here means "no usable TPU for TF"
            notes.append(f"TPUStrategy unavailable ({type(e).__name__}); trying GPU/CPU")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # share the GPU politely with other processes (Colab notebooks)
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        names = [f"/gpu:{i}" for i in range(len(gpus))]
        strategy = tf.distribute.MirroredStrategy(names) if len(gpus) > 1 else None
        kind = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return Runtime("tensorflow", kind, len(gpus), strategy, reason, notes)
    n = _cpu_split()
    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        with contextlib.suppress(RuntimeError):  # already initialised: keep what exists
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        logical = tf.config.list_logical_devices("CPU")
        n = len(logical)
        if n > 1:
            notes.append(f"CPU split into {n} logical devices ({CPU_DEVICES_ENV})")
            return Runtime("tensorflow", "CPU", n, tf.distribute.MirroredStrategy([d.name for d in logical]), reason, notes)
    return Runtime("tensorflow", "CPU", 1, None, reason, notes)


def _init_jax(reason: str) -> Runtime:
    import jax
    import keras

    devices = jax.devices()
    kind = devices[0].device_kind if devices else "CPU"
    notes = []
    distribution = None
    if len(devices) > 1:
        # One layout: every batch is split across all local devices. Keras keeps it per thread: set
        # here for this thread (scripts), and by Runtime.job_scope in the JobManager's workers.
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
        notes.append(f"keras.distribution.DataParallel over {len(devices)} devices")
    return Runtime("jax", kind, len(devices), None, reason, notes, distribution=distribution)


def reset_for_tests() -> None:
    """Forget the cached runtime (tests that fake facts call this; devices stay initialised)."""
    global _RUNTIME, _CHOICE
    _RUNTIME = None
    _CHOICE = None
