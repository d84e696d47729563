"""Where runs are kept: persistent storage on a hosted Space when it has some, else local disk."""

from __future__ import annotations

import os
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
