"""Where runs are kept: persistent storage on a hosted Space when it has some, else local disk."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

SPACE_DATA = Path("/data")  # a Hugging Face Space's persistent storage, when the Space has it


def choose_runs_dir(explicit: str | None, environ=os.environ, data_dir: Path = SPACE_DATA) -> tuple[Path, str]:
    """The runs folder and a note for the page ("" when there is nothing to warn about).

    Args:
        explicit: --runs-dir, when the teacher gave one (always wins).
        environ: the process environment (a Space sets SPACE_ID).
        data_dir: the persistent-storage mount to look for.
    """
    if explicit:
        return Path(explicit), ""
    if data_dir.is_dir() and os.access(data_dir, os.W_OK):
        return data_dir / "vision-lab" / "runs", ""
    if environ.get("SPACE_ID"):
        return Path("runs"), ("Runs are saved on this Space's local disk and will be lost when it restarts "
                              "(add persistent storage to keep them).")
    return Path("runs"), ""


TMP_PREFIX = ".tmp-"  # a folder being written: renamed into place when complete


def sweep_temporary(root: Path) -> int:
    """Remove half-written folders (`.tmp-*`) that a killed save left behind; returns how many.

    Call at start-up, before any save can be in flight: saves write into a `.tmp-` folder and
    rename it into place, so anything still called that is garbage.
    """
    n = 0
    for folder in Path(root).glob(TMP_PREFIX + "*"):
        shutil.rmtree(folder, ignore_errors=True)
        n += 1
    return n


SECRET_FILE = ".browser-state-key"


def persistent_secret(folder: Path) -> str:
    """A random key made once and kept in `folder` (read back on every later start).

    The page's gr.BrowserState is encrypted with it, so a restarted app can still read the
    client id each browser kept: students find their runs again after a restart. Gradio sends
    this key to every browser, so it gives persistence, not secrecy: the client id itself (random,
    never displayed) is a student's identity.
    """
    path = Path(folder) / SECRET_FILE
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(key)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # never a half-written key
    return key
