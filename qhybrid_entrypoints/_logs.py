"""JSON log lines for the service's processes (the API and the dispatcher)."""

from __future__ import annotations

import json
import logging
from typing import Any


class _JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": record.created, "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        return json.dumps(line)


def json_logging() -> None:
    """JSON log lines on stderr for the service's loggers."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLogFormatter())
    for name in ("qhybrid.api", "qhybrid.dispatcher", "qhybrid.service"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
