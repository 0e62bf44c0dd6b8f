"""``python -m usage_meter_local``: put the service's code, this package and the application
client package on the path, then run the command line (see cli.py). The Makefile runs it with
``PYTHONPATH=functions:infra:clients/python/src``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for directory in (ROOT / "clients" / "python" / "src", ROOT / "infra", ROOT / "functions"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from usage_meter_local.cli import main  # noqa: E402 - after the path set-up above

if __name__ == "__main__":
    sys.exit(main())
