"""Log lines: plain text in the embedded default, one JSON object per line in production."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.config import load_settings
from keyshop.logs import configure_logging

pytestmark = pytest.mark.one_pass  # independent of the pass's database


def _log_through(settings) -> str:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(settings, stream=stream)
        log = logging.getLogger("keyshop.test")
        log.info("order %s paid", "KS-AAAA-BBBB", extra={"order": "KS-AAAA-BBBB", "webhook_id": 7})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    return stream.getvalue()


def test_json_lines_carry_the_context_fields(tmp_path):
    out = _log_through(load_settings(KEYSHOP_VAR_DIR=str(tmp_path), KEYSHOP_LOG_FORMAT="json"))
    first, second = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
    assert first["message"] == "order KS-AAAA-BBBB paid" and first["level"] == "INFO"
    assert first["logger"] == "keyshop.test" and first["order"] == "KS-AAAA-BBBB"
    assert first["webhook_id"] == 7 and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_the_embedded_default_logs_plain_lines(tmp_path):
    settings = load_settings(KEYSHOP_VAR_DIR=str(tmp_path))
    assert settings.effective_log_format == "text"
    out = _log_through(settings)
    assert out.splitlines()[0] == "INFO keyshop.test: order KS-AAAA-BBBB paid"


def test_production_defaults_to_json():
    from core.config import Settings

    assert (
        Settings.model_construct(env="production", log_format=None).effective_log_format == "json"
    )
