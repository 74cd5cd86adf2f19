"""Logging for every keyshop process: the plain one-line format in the embedded default,
one JSON object per line in production (``KEYSHOP_LOG_FORMAT``), for a log pipeline to
index. Fields given with ``extra=``, and those of the work at hand (the order number,
webhook id or purchase id bound by ``core.tracing``), become JSON keys.
Keys and tokens are never passed to a logger (DESIGN §4 invariant 5)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from core.config import Settings
from core.tracing import LogContext

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra, "exception"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Set up the root logger for this process from the settings."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(LogContext())  # order, webhook_id, purchase_id of the work at hand
    handler.setFormatter(
        JsonFormatter()
        if settings.effective_log_format == "json"
        else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
