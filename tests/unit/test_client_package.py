"""The application client package (clients/python, ``usage_meter_client``): installable on its
own, standard library only, typed, not in the Lambda artifact, and in agreement with the service.

One definition per rule: the client's ``_identifiers``, ``_standard_webhooks`` and ``_limits`` are
generated from the service's modules by infra/gen_client_rules.py (docs/decisions.md,
2026-11-29); these tests fail when a copy is stale, when the client reaches outside the standard
library, or when the client and the service disagree on a path, a limit or a signature.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import gen_client_rules
import usage_meter_client
from usage_meter.logic import standard_webhooks
from usage_meter.models import identifiers, webhook
from usage_meter_client import UsageReporter, client, products
from usage_meter_client import _identifiers as client_identifiers
from usage_meter_client import _standard_webhooks as client_signing

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "clients" / "python"
SOURCES = PACKAGE_DIR / "src" / "usage_meter_client"
SECRET = "whsec_" + base64.b64encode(b"test-only-client-key-0001").decode()
# The one import outside the standard library: UsageReporter.attach takes an assemblyai
# StreamingClient and needs the SDK's event names, imported inside that method only.
OPTIONAL_LAZY_IMPORTS = {"assemblyai"}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(imports run at import time, imports inside functions) of a module, as top-level names."""
    functions: list[ast.AST] = []
    at_import: list[ast.stmt] = []
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append(child)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                at_import.append(child)
            else:
                pending.append(child)
    top = gen_client_rules.imported_modules(ast.unparse(ast.Module(at_import, type_ignores=[])))
    nested: set[str] = set()
    for function in functions:
        nested |= gen_client_rules.imported_modules(ast.unparse(function))
    return top, nested


def test_the_generated_copies_of_the_service_rules_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "gen_client_rules.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    for name, source in gen_client_rules.COPIES.items():
        copy = (SOURCES / name).read_text()
        assert copy.endswith(source.read_text()) and copy.count("\n") == (
            source.read_text().count("\n") + 1
        )


def test_the_package_imports_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"__future__", "usage_meter_client"}
    modules = sorted(SOURCES.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "client.py", "entitlement.py"}
    for module in modules:
        top, nested = _imports(module)
        assert top <= allowed, (module.name, top - allowed)
        assert nested <= allowed | OPTIONAL_LAZY_IMPORTS, (module.name, nested - allowed)
    assert (SOURCES / "py.typed").is_file()


def test_the_lambda_artifact_does_not_ship_or_need_the_client() -> None:
    """CodeUri is functions/: no app helper there, and no service module imports the client."""
    functions = ROOT / "functions"
    assert not list(functions.rglob("app_*.py"))
    for module in functions.rglob("*.py"):
        top, nested = _imports(module)
        assert "usage_meter_client" not in top | nested, module


def test_client_and_service_agree_on_paths_limits_and_rules() -> None:
    # Imported here, not at collection: the handler's Metrics reads its namespace from the
    # environment the autouse fixture sets.
    from usage_meter.handlers import streaming_report

    client_paths = {
        client.BEGIN_PATH,
        client.TERMINATION_PATH,
        products.LLM_GATEWAY_PATH,
        products.SYNC_PATH,
        products.VOICE_AGENT_PATH,
    }
    service_routes = {
        streaming_report.BEGIN_ROUTE,
        streaming_report.TERMINATION_ROUTE,
        *streaming_report.PRODUCT_ROUTES,
    }
    assert {f"POST {path}" for path in client_paths} == service_routes
    assert client.WEBHOOK_MAX_DIMENSIONS == webhook.WEBHOOK_MAX_DIMENSIONS
    for value in ["acme", "müller-gmbh", "=cmd", "a#b", "u\u0308", "x" * 129, "acme  corp"]:
        assert client_identifiers.is_customer_id(value) == identifiers.is_customer_id(value)
    body = b'{"session_id":"s"}'
    assert client_signing.sign(SECRET, "msg_1", 1_790_000_000, body) == standard_webhooks.sign(
        SECRET, "msg_1", 1_790_000_000, body
    )


def test_a_report_signed_by_the_client_verifies_with_the_official_library() -> None:
    """The other direction of the interoperability test in test_streaming.py: what the client
    sends verifies with ``standardwebhooks`` 1.1.0, the reference Python implementation."""
    body = json.dumps({"session_id": "s-1", "customer_id": "acme"}).encode()
    headers = client_signing.signed_headers([SECRET], "msg_abc", int(time.time()), body)
    Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"acme", b"evil"), headers)


def test_the_reporter_refuses_a_secret_that_cannot_sign() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        UsageReporter("https://meter.example", "plain-text-secret")
    assert UsageReporter("https://meter.example", SECRET).attempts == 4


def test_the_public_names_are_exported() -> None:
    for name in usage_meter_client.__all__:
        assert getattr(usage_meter_client, name) is not None, name


def _interpreters() -> list[str]:
    """This Python, and the oldest one the package declares (3.11) when the machine has it."""
    found = [sys.executable]
    oldest = shutil.which("python3.11") or next(
        (str(p) for p in Path.home().glob(".pyenv/versions/3.11*/bin/python3.11")), None
    )
    return [*found, oldest] if oldest else found


@pytest.mark.slow
def test_the_package_builds_offline_installs_alone_and_imports_only_the_stdlib(
    tmp_path: Path,
) -> None:
    """``pip wheel`` with no network (the pinned setuptools of the dev environment), install the
    wheel alone into an empty virtual environment, import every module there."""
    project = tmp_path / "project"
    shutil.copytree(
        PACKAGE_DIR, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, project],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("assemblyai_usage_meter_client-0.1.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "usage_meter_client/py.typed" in names
    assert not [n for n in names if n.startswith("usage_meter/")]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Requires-Dist" not in zipfile.ZipFile(wheel).read(metadata).decode()

    probe = (
        "import importlib, pkgutil, sys\n"
        "import usage_meter_client as p\n"
        "for m in pkgutil.iter_modules(p.__path__):\n"
        "    importlib.import_module(f'{p.__name__}.{m.name}')\n"
        "outside = {n.split('.')[0] for n in sys.modules} - set(sys.stdlib_module_names)\n"
        "assert outside <= {'usage_meter_client', '__main__'}, outside\n"
        "from importlib.resources import files\n"
        "assert files('usage_meter_client').joinpath('py.typed').is_file()\n"
        "print(p.__file__)\n"
    )
    for number, interpreter in enumerate(_interpreters()):
        venv = tmp_path / f"venv{number}"
        subprocess.run([interpreter, "-m", "venv", "--without-pip", venv], check=True)
        python = venv / "bin" / "python"
        subprocess.run(
            [*pip, "--python", python, "install", "--no-deps", "--no-index", wheel],
            check=True,
            capture_output=True,
        )
        result = subprocess.run(
            [python, "-I", "-c", probe], capture_output=True, text=True, check=False, cwd=tmp_path
        )
        assert result.returncode == 0, (interpreter, result.stderr)
        assert str(venv) in result.stdout  # the installed copy, not the source tree


@pytest.mark.parametrize(
    ("base", "header_value", "message"),
    [
        ("https://meter.example/webhooks/assemblyai?customer_id=x", "s3cret", "query string"),
        ("https://meter.example/webhooks/assemblyai#frag", "s3cret", "fragment"),
        ("ftp://meter.example/webhooks/assemblyai", "s3cret", "http(s)"),
        ("meter.example/webhooks/assemblyai", "s3cret", "http(s)"),
        ("https://meter.example/webhooks/assemblyai", "", "must not be empty"),
        ("https://meter.example/webhooks/assemblyai", "  ", "must not be empty"),
    ],
)
def test_webhook_target_refuses_a_base_url_or_header_the_service_cannot_use(
    base: str, header_value: str, message: str
) -> None:
    """A query/fragment in the base yields a second ``customer_id`` (quarantined by the service);
    an empty auth header value gets a 401, and AssemblyAI does not retry a 4xx."""
    from usage_meter_client import webhook_target

    with pytest.raises(ValueError, match=re.escape(message)):
        webhook_target(base, "acme", auth_header_value=header_value)
    target = webhook_target(
        "https://meter.example/webhooks/assemblyai", "acme", auth_header_value="s3cret"
    )
    assert target.url == "https://meter.example/webhooks/assemblyai?customer_id=acme"
