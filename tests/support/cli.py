"""Run ``keyshop`` as an operator does: a real subprocess on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def keyshop(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING

    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    env = {
        **base,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": settings.effective_database_url,
        "KEYSHOP_VAR_DIR": str(settings.var_dir),
        "KEYSHOP_KEYRING": TEST_KEYRING,
        "KEYSHOP_FINGERPRINT_KEY": TEST_FINGERPRINT_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "keyshop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def invoke(monkeypatch: Any, settings: Settings, *args: str) -> Any:
    """``keyshop ARGS`` in this process (click's runner) on ``settings``: much faster
    than a subprocess; the settings and logging the command would set up are left as the
    tests have them. Returns click's Result (``exit_code``, ``stdout``, ``stderr``)."""
    from click.testing import CliRunner

    from core import config
    from keyshop import cli as cli_module

    monkeypatch.setattr(config, "load_settings", lambda: settings)
    monkeypatch.setattr(config, "use_settings", lambda new: None)
    monkeypatch.setattr(cli_module, "configure_logging", lambda s: None)
    return CliRunner().invoke(cli_module.cli, list(args), catch_exceptions=False)
