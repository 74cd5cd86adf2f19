"""The alert rules shipped in deploy/prometheus are valid and fire when they should
(promtool, from Debian's prometheus package, which ./dev test installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_pass  # independent of the pass's database

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (./dev test does)"
    return found


def test_the_alert_rules_are_valid() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_each_alert_fires_on_its_cause_and_not_before() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
