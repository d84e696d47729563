"""The lab as an installed Python tool (issue 20): a wheel built from the checkout, installed in a fresh
virtual environment outside it, serves the bundled data through its `vision-lab` command.

The fresh environment gets the wheel itself (no dependencies: installing TensorFlow and JAX again would
take minutes); the dependencies come from this test run's own environment through a .pth file, so the
lab's own files can only come from the wheel: its code, its sample data and its examples.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
TOP_LEFT_OUT = shutil.ignore_patterns(".git", ".venv*", ".node", "node_modules", "runs*", "build", "dist", "*.egg-info",
                                      "artifacts", ".pytest_cache", ".gradio")


def left_out(folder: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: local environments and outputs at the top, caches anywhere."""
    top = TOP_LEFT_OUT(folder, names) if Path(folder) == ROOT else set()
    return top | {n for n in names if n == "__pycache__"}


def requirement_lines(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-r")]


def test_the_dev_extra_lists_what_requirements_dev_adds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["optional-dependencies"]["dev"]) == sorted(requirement_lines(ROOT / "requirements-dev.txt"))
    assert project["scripts"]["vision-lab"] == "lab_app:main"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin folder): the wheel installed in a new virtual environment."""
    base = tmp_path_factory.mktemp("package")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=left_out)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(src)],
                   check=True, cwd=base, timeout=600)
    wheels = list((base / "dist").glob("vision_lab-*.whl"))
    assert len(wheels) == 1
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheels[0])],
                   check=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies: this environment's site-packages, after the venv's own (which holds the lab)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site, "zz_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python, venv / "bin", base


def test_the_wheel_holds_the_lab_and_its_data_not_the_checkout(installed):
    python, _, base = installed
    code = ("import lab_app, lab.datasets as d, components, models; "
            "print(lab_app.__file__); print(d.SAMPLE_DATA); print(len(d.load('digits').y)); "
            "print(sorted(p.name for p in (d.SAMPLE_DATA / 'examples').glob('*.png'))[:2])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", code], cwd=base, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    where, data, count, examples = out.stdout.strip().splitlines()[-4:]
    venv = str(base / "venv")
    assert where.startswith(venv) and data.startswith(venv), (where, data)  # not the checkout
    assert count == "1797" and "digit_0.png" in examples


@pytest.mark.slow
def test_the_vision_lab_command_serves_the_bundled_data(installed, tmp_path):
    from gradio_client import Client, handle_file

    python, bin_dir, base = installed
    helped = subprocess.run([str(bin_dir / "vision-lab"), "--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and all(f in helped.stdout for f in ("--host", "--port", "--share", "--runs-dir", "--backend"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log = open(tmp_path / "vision-lab.log", "w")
    proc = subprocess.Popen([str(bin_dir / "vision-lab"), "--port", str(port), "--runs-dir", str(tmp_path / "runs")],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = None
        deadline = time.time() + 180
        while client is None and time.time() < deadline:
            assert proc.poll() is None, (tmp_path / "vision-lab.log").read_text()[-3000:]
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # not up yet
                time.sleep(1)
        assert client is not None, "vision-lab did not answer"
        job = client.predict({"epochs": 3}, api_name="/train")
        for _ in range(600):
            status = client.predict(job["job_id"], api_name="/job_status")
            if status["state"] not in ("queued", "running"):
                break
            time.sleep(0.3)
        assert status["state"] == "done", status
        example = subprocess.run([str(python), "-c", "import lab.datasets as d; print(d.SAMPLE_DATA / 'examples' / 'digit_3.png')"],
                                 cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300).stdout.strip()
        assert example.startswith(str(base / "venv"))
        out = client.predict(handle_file(example), "", api_name="/predict")
        assert out["label"] == "3"
        assert re.search(r"Keras \w+ backend", client.predict(api_name="/accelerator")["summary"])
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
