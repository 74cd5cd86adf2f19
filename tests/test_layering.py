"""core knows nothing of Reflex, Textual, Huey or the layers above it."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import core

pytestmark = pytest.mark.one_pass  # independent of the pass's database

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("reflex", "textual", "huey", "web", "console", "tasks", "keyshop")


def test_importing_all_of_core_loads_no_ui_or_queue_module():
    modules = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "core."))
    assert "core.services.orders" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
