"""Generate the pinned requirement files from pyproject.toml (the single source of versions).

- functions/requirements.txt: what `sam build` packages into the Lambda functions.
- requirements-dev.txt: the development and test tools.

Run `make requirements` after changing pyproject.toml; tests/unit/test_project_files.py fails when
the generated files are stale. Neither file may contain a registry URL.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from generated_files import write_or_check

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml by infra/gen_requirements.py - do not edit.\n"


def render() -> dict[Path, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = sorted(project["dependencies"], key=str.lower)
    dev = sorted(project["optional-dependencies"]["dev"], key=str.lower)
    return {
        ROOT / "functions" / "requirements.txt": HEADER + "".join(f"{d}\n" for d in runtime),
        ROOT / "requirements-dev.txt": HEADER + "".join(f"{d}\n" for d in dev),
    }


def main(argv: list[str]) -> int:
    return write_or_check(render(), ROOT, argv, "generated files")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
