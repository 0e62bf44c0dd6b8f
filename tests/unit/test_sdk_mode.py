"""The tests run the assemblyai SDK in the same pydantic mode as the Lambda package.

The SDK picks its pydantic path at import time: ``assemblyai/types.py`` (1.8.2) tries
``from pydantic_settings import BaseSettings`` and, when that fails on Python < 3.14, falls back to
``pydantic.v1`` for ``Settings``, every transcript model and the LLM Gateway models
(``pydantic_v2 = False``); ``streaming/v3/models.py`` tries pydantic v2 on its own. So whether a
distribution the SDK probes is installed changes which models the SDK builds. The test
environment gets ``pydantic-settings`` through ``moto[server]`` (openapi-spec-validator), so the
Lambda package ships it as well (pyproject.toml); these tests fail when the two diverge again.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _probed_modules() -> set[str]:
    """Top-level modules the installed SDK imports inside ``try: ... except ImportError``."""
    spec = importlib.util.find_spec("assemblyai")
    assert spec is not None and spec.submodule_search_locations
    probed: set[str] = set()
    for path in Path(next(iter(spec.submodule_search_locations))).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            caught = {
                name.id
                for handler in node.handlers
                for name in ast.walk(handler.type or ast.Name("BaseException"))
                if isinstance(name, ast.Name)
            }
            if not caught & {"ImportError", "ModuleNotFoundError"}:
                continue
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.level == 0:
                    probed.add((statement.module or "").split(".")[0])
                elif isinstance(statement, ast.Import):
                    probed.update(alias.name.split(".")[0] for alias in statement.names)
    return probed


def _lambda_distributions() -> set[str]:
    """functions/requirements.txt and everything those distributions require (as installed),
    i.e. what ``sam build`` puts in the Lambda package."""
    lines = (ROOT / "functions" / "requirements.txt").read_text().splitlines()
    pending = [Requirement(line) for line in lines if line and not line.startswith("#")]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = _canonical(requirement.name)
        if name in found:
            continue
        found.add(name)
        for raw in metadata.requires(requirement.name) or []:
            needed = Requirement(raw)
            if needed.marker is None or needed.marker.evaluate({"extra": ""}):
                pending.append(needed)
    return found


def test_the_sdk_probes_pydantic_settings() -> None:
    """The guard below watches what the installed SDK really probes (so an SDK upgrade that
    probes something new is covered too)."""
    assert {"pydantic", "pydantic_settings"} <= _probed_modules()


def test_every_distribution_the_sdk_probes_is_in_the_lambda_exactly_when_tests_have_it() -> None:
    providers = metadata.packages_distributions()
    in_lambda = _lambda_distributions()
    diverging = []
    for module in sorted(_probed_modules() - set(sys.stdlib_module_names)):
        installed_here = importlib.util.find_spec(module) is not None
        distributions = {_canonical(d) for d in providers.get(module, [])}
        shipped = bool(distributions & in_lambda)
        if installed_here != shipped:
            diverging.append((module, f"tests: {installed_here}", f"Lambda: {shipped}"))
    assert diverging == [], diverging


def test_the_sdk_runs_its_pydantic_v2_models_here_as_in_the_lambda() -> None:
    from assemblyai import types
    from assemblyai.llm_gateway.v1 import models as llm_gateway

    assert "pydantic-settings" in _lambda_distributions()
    assert types.pydantic_v2 is True and llm_gateway.pydantic_v2 is True
    assert types.BaseModel.__module__ == "pydantic.main"
