"""The app as it starts on a laptop or a CPU Space, with nothing pinned: `auto` picks JAX on a CPU
where JAX is installed (issue 18), warms the default job up, and keeps compiled programs beside the
runs so a restarted app starts warm. The rest of the suite pins the TensorFlow backend
(VISION_LAB_BACKEND in conftest); this module is the lab on its shipped default.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from gradio_client import Client, handle_file

from lab.datasets import SAMPLE_DATA
from tests.conftest import LaunchedApp
from tests.test_app_api import wait_for

pytestmark = pytest.mark.slow
UNPINNED = {"VISION_LAB_BACKEND": "", "KERAS_BACKEND": "", "JAX_PLATFORMS": "cpu", "VISION_LAB_WARM_UP": "1"}


def accelerator_line(app) -> str:
    """The line over the tabs as the page first serves it."""
    with urllib.request.urlopen(app.url + "config", timeout=10) as r:
        config = json.load(r)
    return next(c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "accelerator")


def test_the_unpinned_app_trains_on_jax_warms_up_and_keeps_compiled_programs(tmp_path):
    first = LaunchedApp(tmp_path / "runs", extra_env=UNPINNED)
    try:
        first.wait_ready()
        assert "jax backend" in accelerator_line(first)
        client = Client(first.url, verbose=False)
        info = client.predict(api_name="/accelerator")
        assert info["backend"] == "jax" and "CPU" in info["reason"] and "faster" in info["reason"]
        deadline = time.time() + 120
        while info["warm_up"].startswith("warming up") and time.time() < deadline:
            time.sleep(0.5)
            info = client.predict(api_name="/accelerator")
        assert info["warm_up"].startswith("warm: mlp on digits compiled"), info
        compiled = tmp_path / "runs-compiled"
        assert compiled.is_dir() and any(compiled.iterdir()), "the warm-up's programs were not kept beside the runs"

        job = client.predict({"epochs": 3}, api_name="/train")
        status = wait_for(client, job["job_id"])
        assert status["state"] == "done", status
        assert "jax" in status["progress"]["accelerator"]
        assert status["metrics"][-1]["val_accuracy"] > 0.8
        out = client.predict(handle_file(str(SAMPLE_DATA / "examples" / "digit_3.png")), "", api_name="/predict")
        assert out["label"] == "3"
        assert client.predict("", api_name="/evaluate")["accuracy"] > 0.8
        kept = len(list(compiled.iterdir()))
    finally:
        first.close()

    again = LaunchedApp(tmp_path / "runs", extra_env=UNPINNED)  # the next lesson, same runs folder
    try:
        again.wait_ready()
        client = Client(again.url, verbose=False)
        job = client.predict({"epochs": 1}, api_name="/train")  # a new lesson's first job, on the kept programs
        assert wait_for(client, job["job_id"])["state"] == "done"
        assert client.predict(api_name="/accelerator")["warm_up"].startswith("warm:")
        assert len(list(compiled.iterdir())) >= kept
    finally:
        again.close()
