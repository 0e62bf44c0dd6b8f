"""Copy the service's shared rules into the application client package (clients/python).

The client package (``usage_meter_client``) must install without the service, so it cannot
import ``usage_meter``; the Lambda artifact (CodeUri ``functions/``) must not ship the client.
The rules both sides apply therefore keep ONE definition, in the service, and the client gets a
generated, verbatim copy:

- ``functions/usage_meter/models/identifiers.py`` -> ``usage_meter_client/_identifiers.py``
  (customer id, project and dimension rules);
- ``functions/usage_meter/logic/standard_webhooks.py``
  -> ``usage_meter_client/_standard_webhooks.py``
  (the signature of forwarded notifications and of the application's usage reports);
- the constants in ``LIMITS`` -> ``usage_meter_client/_limits.py``.

Each source must import only the standard library (checked here). Run `make requirements` after
changing a source; `make lint` and tests/unit/test_client_package.py fail when a copy is stale.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from generated_files import write_or_check

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "functions" / "usage_meter"
CLIENT = ROOT / "clients" / "python" / "src" / "usage_meter_client"
COPIES = {
    "_identifiers.py": SERVICE / "models" / "identifiers.py",
    "_standard_webhooks.py": SERVICE / "logic" / "standard_webhooks.py",
}
# Literal constants the client needs, by the service module that defines them: the client's name
# -> the service's name (one definition: models/identifiers.py's MAX_DIMENSIONS).
LIMITS = {SERVICE / "models" / "identifiers.py": {"WEBHOOK_MAX_DIMENSIONS": "MAX_DIMENSIONS"}}
ALLOWED_TOP_LEVEL = frozenset(sys.stdlib_module_names) | {"__future__"}


def _header(source: Path) -> str:
    where = source.relative_to(ROOT).as_posix()
    return f"# Generated from {where} (make requirements).\n"


def imported_modules(source: str) -> set[str]:
    """The top-level module names a Python source imports (relative imports as ``.``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else (node.module or "").split(".")[0])
    return names


def _copy(source: Path) -> str:
    text = source.read_text()
    foreign = imported_modules(text) - ALLOWED_TOP_LEVEL
    if foreign:
        raise SystemExit(f"{source} imports {sorted(foreign)}: the client copy needs stdlib only")
    return _header(source) + text


def _limits() -> str:
    lines = ['"""Limits the service applies, as the client must know them."""', ""]
    for source, names in LIMITS.items():
        found: dict[str, object] = {}
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id in names.values():
                    found[target.id] = ast.literal_eval(node.value)
        missing = set(names.values()) - set(found)
        if missing:
            raise SystemExit(f"{source} no longer defines {sorted(missing)}")
        lines += [f"{client} = {found[service]!r}" for client, service in names.items()]
    return _header(next(iter(LIMITS))) + "\n".join(lines) + "\n"


def render() -> dict[Path, str]:
    """Each generated client file and its text."""
    files = {CLIENT / name: _copy(source) for name, source in COPIES.items()}
    files[CLIENT / "_limits.py"] = _limits()
    return files


def main(argv: list[str]) -> int:
    return write_or_check(render(), ROOT, argv, "client copies")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
