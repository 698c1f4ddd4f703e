"""Logging set-up: plain text for a terminal, or JSON lines for a log pipeline."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping, also given to uvicorn so its logs match."""
    formatter: dict[str, Any] = (
        {"()": JsonLineFormatter}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # Access logs at info would log every ingestion call; keep them at warning.
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
            # Migration chatter at every start-up; failures still log at error.
            "alembic": {"handlers": [], "propagate": True, "level": "WARNING"},
            # kafka-python logs every connection and fetch step at info; collectors.kafka says
            # what matters (assignments, broker reachable or not, checkpoints failing).
            "kafka": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }
