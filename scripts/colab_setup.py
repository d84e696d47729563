"""Kept for notebooks copied before the lab became a package: the setup now lives in lab/colab.py.

    python scripts/colab_setup.py      # the same as: python -m lab.colab
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lab.colab import main  # noqa: E402

if __name__ == "__main__":
    main()
