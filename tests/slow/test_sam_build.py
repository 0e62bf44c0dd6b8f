"""`sam build` (the real SAM CLI, pinned in the Makefile) packages every function for arm64."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from usage_meter_local.template import function_handlers, load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sam_build_packages_every_function_for_arm64() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        ["make", "build"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Build Succeeded" in result.stdout

    build = ROOT / ".aws-sam" / "build"
    for logical_id, handler in function_handlers(load_template()).items():
        module = handler.rpartition(".")[0]
        assert (build / logical_id / (module.replace(".", "/") + ".py")).is_file(), logical_id
        native = list((build / logical_id / "pydantic_core").glob("*.so"))
        assert native and all("aarch64" in so.name for so in native), native
        assert (build / logical_id / "assemblyai").is_dir()
        # the SDK's pydantic v2 path, as in the tests (tests/unit/test_sdk_mode.py)
        assert (build / logical_id / "pydantic_settings").is_dir(), logical_id
    assert (build / "template.yaml").is_file()
