"""README claims that code can check: the guarantees table names tests that exist, and the
failure table names every quarantine reason the code can give."""

from __future__ import annotations

import re
from pathlib import Path

from usage_meter.models.usage import QuarantineReason

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(heading: str) -> str:
    """README's text from ``heading`` to the next heading of the same or a higher level."""
    start = README.index(f"\n{heading}\n") + len(heading) + 2
    level = len(heading) - len(heading.lstrip("#"))
    end = re.search(rf"\n#{{1,{level}}} ", README[start:])
    return README[start : start + end.start() if end else None]


def _guarantee_references() -> list[tuple[Path, str | None]]:
    """Every ``file.py``, ``file.py::test``, ``::test`` (or ``::TestClass::test``) and bare
    ``test_x`` in the guarantees table's right-hand column, as (file, test name or None); a file
    without a directory is in tests/integration/ (what the README says under the table)."""
    found: list[tuple[Path, str | None]] = []
    for row in _section("## Guarantees and the tests that prove them").splitlines():
        if not row.startswith("| **"):
            continue
        current: Path | None = None
        for token in re.findall(r"`([^`]+)`", row.rsplit("|", 2)[-2]):
            file_part, _, name = token.partition("::")
            if file_part.endswith(".py"):
                current = ROOT / (
                    file_part if "/" in file_part else f"tests/integration/{file_part}"
                )
                found.append((current, name or None))
            elif current is not None and re.fullmatch(r"(Test\w+::)*test_\w+", name or file_part):
                found.append((current, name or file_part))
    return found


def _defines(source: str, name: str) -> bool:
    """Whether ``source`` defines ``test_x`` or ``TestClass::test_x``."""
    *classes, function = name.split("::")
    wanted = [rf"^class {c}\b" for c in classes] + [rf"^\s*def {function}\("]
    return all(re.search(pattern, source, re.MULTILINE) for pattern in wanted)


def test_every_test_the_guarantees_table_names_exists() -> None:
    references = _guarantee_references()
    assert len(references) > 40  # the parser reads the table (it names dozens of tests)
    missing = [
        f"{path.relative_to(ROOT)}::{name}" if name else str(path.relative_to(ROOT))
        for path, name in references
        if not path.is_file() or (name and not _defines(path.read_text(), name))
    ]
    assert missing == []


def test_the_failure_table_names_every_quarantine_reason() -> None:
    table = _section("### Where failed usage goes: DLQ or quarantine")
    assert [r.value for r in QuarantineReason if f"`{r.value}`" not in table] == []


def test_the_make_local_banner_excerpt_lists_every_route_of_the_template() -> None:
    from usage_meter_local.template import http_routes, load_template

    banner = _section("### `make local`: keep the stack serving")
    routes = http_routes(load_template())
    assert len(routes) > 5
    missing = [
        f"{method} {path} -> {function}"
        for (method, path), function in routes.items()
        if f"{method} {path} -> {function}\n" not in banner
    ]
    assert missing == []
