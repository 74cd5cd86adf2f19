"""The webhook sources are one static table, and the modules around it import each other
without a cycle (issue #12 item 5: no behaviour by import side effect)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_sources_are_a_static_table():
    from core.services import nowpayments, payments, provider_events
    from core.services.webhook_sources import SOURCES

    assert sorted(SOURCES) == ["codeswholesale", "kinguin", "nowpayments", "stripe"]
    assert SOURCES["nowpayments"].handle is nowpayments.handle_nowpayments
    assert SOURCES["stripe"].handle is payments.handle_stripe
    assert SOURCES["kinguin"].authenticate is provider_events.authenticate_kinguin


@pytest.mark.parametrize(
    "module",
    ["core.services.payments", "core.services.provider_events", "core.services.nowpayments"],
)
def test_a_source_module_does_not_import_the_inbox(module):
    code = f"import sys, {module}; sys.exit('core.services.webhooks' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"{module} imports core.services.webhooks: a cycle\n{result.stderr}"
    )


def test_the_inbox_imported_alone_knows_every_source(tmp_path):
    code = (
        "from core.services.webhooks import receive_webhook, WebhookRejected\n"
        "try:\n"
        "    receive_webhook(source='stripe', headers={'Stripe-Signature': 't=1,v1=0'}, body=b'not json')\n"
        "except WebhookRejected as exc:\n"
        "    print(exc.http_status)\n"
    )
    env = {"KEYSHOP_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    # 400 from Stripe's authenticator (an unknown source is 404): found without payments imported first
    assert result.stdout.strip() == "400", result.stderr
