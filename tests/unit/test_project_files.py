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


def test_the_package_is_buildable_and_names_the_ops_console_script() -> None:
    import importlib
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    backend = pyproject["build-system"]
    assert backend["build-backend"] == "setuptools.build_meta"
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9.]+", r) for r in backend["requires"])
    module, _, attribute = pyproject["project"]["scripts"]["usage-meter-ops"].partition(":")
    main = getattr(importlib.import_module(module), attribute)
    assert callable(main)
    found = pyproject["tool"]["setuptools"]["packages"]["find"]
    assert (ROOT / found["where"][0] / "usage_meter" / "__init__.py").is_file()
    for pattern in pyproject["tool"]["setuptools"]["package-data"]["usage_meter"]:
        assert list((ROOT / "functions" / "usage_meter").glob(pattern)), pattern
    assert (ROOT / pyproject["project"]["license-files"][0]).is_file()


def test_make_help_lists_every_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.findall(r"^\.PHONY: (.+)$", makefile, re.M))
    described = set(re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.M))
    assert phony and phony == described, phony ^ described


def test_the_first_install_says_it_is_installing() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): ", 1)[1].split("\n\n", 1)[0]
    first, *_ = [line for line in recipe.splitlines()[1:] if line.strip()]
    assert "echo" in first and "Installing" in first and "minutes" in first
