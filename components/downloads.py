"""Handing a run's downloads (lab.export) to a browser or an API caller.

Exports are built once and kept in the run's folder, which may be anywhere (a Space's /data, a
Colab runtime's Google Drive): Gradio serves only files under the working directory, the system's
temporary folder or its own cache, so each one handed out is copied into a temporary folder first
(Gradio then copies it into its cache, which delete_cache empties). Those copies are removed after
HAND_OUT_SECONDS.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path

from lab.model_card import FORMATS

EXPORT_POOL = "export"  # the concurrency id of every export, the page's and /export's: conversions are CPU work
EXPORT_LIMIT = 1  # exports built at once in the whole app (a second request for a built one is a file copy)
FORMAT_CHOICES = [(f.label, f.name) for f in FORMATS.values()]
HAND_OUT_SECONDS = 600  # Gradio copies a returned file at once; ours only has to outlive that
_HAND_OUT = Path(tempfile.gettempdir()) / "vision-lab-downloads"


def hand_out(path: Path) -> str:
    """A copy of `path` (same name) in a fresh temporary folder Gradio may serve from; older copies go."""
    _HAND_OUT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in _HAND_OUT.iterdir():
        try:
            if now - old.stat().st_mtime > HAND_OUT_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another request removed it first
            continue
    folder = _HAND_OUT / secrets.token_hex(8)
    folder.mkdir()
    return str(shutil.copy(path, folder / Path(path).name))
