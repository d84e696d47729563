"""The repository is a working Space as it is: README front matter and requirements agree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n"), "README.md must start with the Space's YAML front matter"
    block = text.split("---\n")[1]
    return dict(line.split(": ", 1) for line in block.strip().splitlines())


def test_front_matter_points_at_the_app_with_a_supported_gradio():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).exists()
    major, minor, _ = (int(p) for p in meta["sdk_version"].split("."))
    req = (ROOT / "requirements.txt").read_text()
    low = re.search(r"gradio>=(\d+)\.(\d+)", req)
    assert (major, minor) >= (int(low[1]), int(low[2])) and major < 7
    assert meta["python_version"].strip('"') in ("3.10", "3.11", "3.12")


def test_requirements_install_the_cpu_wheel_on_linux_spaces():
    req = (ROOT / "requirements.txt").read_text()
    assert re.search(r'^tensorflow-cpu[^\n]*sys_platform == "linux"', req, re.M)


def test_the_app_reads_the_host_from_the_space_environment(monkeypatch):
    import lab_app

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert lab_app.parse_args([]).host == "0.0.0.0"
    assert lab_app.parse_args([]).runs_dir is None  # chosen by lab.storage (/data when present)
