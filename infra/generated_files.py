"""Write generated files, or check that they are up to date: the one `main` of the generators
(infra/gen_requirements.py, infra/gen_client_rules.py)."""

from __future__ import annotations

from pathlib import Path


def write_or_check(files: dict[Path, str], root: Path, argv: list[str], what: str) -> int:
    """With ``--check`` in ``argv``: 1 (naming the stale ``files``) unless each exists with its
    text; otherwise write them. ``what`` names the files in the message."""
    check = "--check" in argv
    stale = []
    for path, text in files.items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(root))
        else:
            path.write_text(text)
    if stale:
        print(f"stale {what}: {', '.join(map(str, stale))}; run `make requirements`")
        return 1
    return 0
