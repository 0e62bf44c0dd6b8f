"""Repository hygiene that CI must keep true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_requirements_match_pyproject() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "gen_requirements.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_pins_are_exact_and_name_no_registry() -> None:
    for name in ("functions/requirements.txt", "requirements-dev.txt", "constraints.txt"):
        lines = [
            line
            for line in (ROOT / name).read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert lines, name
        for line in lines:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+-]+", line), (name, line)
            assert "://" not in line


def test_no_lock_file_or_env_file_is_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [p for p in tracked if p.endswith(("uv.lock", ".env"))]
