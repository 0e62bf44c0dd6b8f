"""Layers that do not leak (issue 10), read from the source's imports (AST, no imports run):

- ``logic/`` and ``models/`` know no AWS and no outer layer: they import neither boto3, botocore,
  the boto3 stubs, ``adapters``, ``handlers`` nor the CLI; ``models/`` imports nothing of
  ``logic/`` (imports flow one way: handlers -> logic -> models; adapters implement logic's ports).
- Only ``adapters/`` import AWS exceptions (``botocore.exceptions``, ``boto3.exceptions``) or
  boto3's item (de)serialisers: everywhere else an AWS failure is already a domain error.
- Query strings (attribution) are read in ``models/`` (``models.webhook.attribution_from_query``)
  and ``adapters/``: ``logic/`` and ``handlers/`` never parse one, and reconciliation never calls
  the webhook intake's code.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from usage_meter.handlers.http_errors import REJECTION_STATUS
from usage_meter.logic.errors import Rejection, RequestRejected

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "usage_meter"
AWS = ("boto3", "botocore", "mypy_boto3_")
OUTER = ("usage_meter.adapters", "usage_meter.handlers", "usage_meter.ops_cli", "usage_meter.ops_")
AWS_INTERNALS = ("botocore.exceptions", "boto3.exceptions", "boto3.dynamodb")
QUERY_PARSERS = {"parse_qs", "parse_qsl"}


def _imports(path: Path) -> list[tuple[str, set[str]]]:
    """(module, names imported from it) for every import in the file, nested ones included."""
    found: list[tuple[str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, set()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, {alias.name for alias in node.names}))
    return found


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (PACKAGE / folder).rglob("*.py"))


def _outside(folder: str) -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if folder not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", _files("logic", "models"), ids=lambda p: p.name)
def test_the_domain_imports_no_aws_and_no_outer_layer(path: Path) -> None:
    bad = [m for m, _ in _imports(path) if m.startswith(AWS) or m.startswith(OUTER)]
    if "models" in path.parts:
        bad += [m for m, _ in _imports(path) if m.startswith("usage_meter.logic")]
    assert bad == [], f"{path.relative_to(PACKAGE)} imports {bad}"


def test_only_adapters_know_aws_exceptions_and_item_formats() -> None:
    bad = [
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in _outside("adapters")
        for module, names in _imports(path)
        if module.startswith(AWS_INTERNALS)
        or (module == "botocore" and "exceptions" in names)
        or (module == "boto3" and "exceptions" in names)
    ]
    assert bad == []


def test_only_models_and_adapters_parse_query_strings() -> None:
    bad = [
        f"{path.relative_to(PACKAGE)}: {sorted(names & QUERY_PARSERS)}"
        for path in _files("logic", "handlers")
        for module, names in _imports(path)
        if module == "urllib.parse" and names & QUERY_PARSERS
    ]
    assert bad == []


def test_reconciliation_does_not_call_the_webhook_intake() -> None:
    modules = {m for m, _ in _imports(PACKAGE / "logic" / "reconciliation.py")}
    assert not {m for m in modules if "webhook_intake" in m or "handlers" in m}
    assert "usage_meter.models.webhook" in modules  # the attribution rule, in one place


def test_the_guard_reads_real_imports() -> None:
    """The scan cannot pass by reading nothing: it sees known imports of each layer."""
    adapter = {m for m, _ in _imports(PACKAGE / "adapters" / "table_access.py")}
    assert "botocore.exceptions" in adapter
    assert len(_files("logic", "models")) > 30


def test_the_project_default_is_the_models_rule_with_the_listing_project_for_reconciliation() -> (
    None
):
    """Reconciliation used to re-parse the query itself to default the project; now it asks the
    one attribution rule (``models.webhook.attribution_from_query``) with its project."""
    from usage_meter.models.webhook import attribution_from_query, webhook_url_is_ours

    none = frozenset[str]()
    assert attribution_from_query("customer_id=acme", 4, none).project == "default"
    assert attribution_from_query("customer_id=acme", 4, none, default_project="eu").project == "eu"
    named = attribution_from_query("customer_id=acme&project=us", 4, none, default_project="eu")
    assert named.project == "us"
    assert webhook_url_is_ours("https://Meter.test/hook/?customer_id=a", "https://meter.test/hook")
    assert not webhook_url_is_ours("https://other.test/hook", "https://meter.test/hook")
    assert not webhook_url_is_ours(None, "https://meter.test/hook")


def _raised_status_codes(path: Path) -> list[str]:
    """HTTP status numbers (100-599) inside the ``raise`` statements and ``RequestRejected``
    constructions of a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        builds = isinstance(node, ast.Call) and getattr(
            node.func, "id", getattr(node.func, "attr", "")
        ) in {"RequestRejected"}
        if isinstance(node, ast.Raise) or builds:
            found += [
                f"{path.name}:{c.lineno}: {c.value}"
                for c in ast.walk(node)
                if isinstance(c, ast.Constant) and isinstance(c.value, int) and 100 <= c.value < 600
            ]
    return found


def test_logic_raises_no_http_status_codes() -> None:
    """``logic/`` refuses a request with a kind (``errors.Rejection``); the HTTP status is
    ``handlers/http_errors.py``'s one mapping."""
    assert [s for p in _files("logic") for s in _raised_status_codes(p)] == []
    assert "status" not in inspect.signature(RequestRejected).parameters
    assert set(REJECTION_STATUS) == set(Rejection)  # every kind has its one status
    probe = PACKAGE / "handlers" / "http_api.py"  # the HTTP resolver's one exception handler
    assert _raised_status_codes(probe) == [] and "rejection_status" in probe.read_text()
