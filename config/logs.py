"""Structured logs: one line per event that matters, `ts level logger event key=value ...`.

Values of keys that look like secrets (password, secret, token, authorization, cookie, api key) are never
written; they are replaced by `***`.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|sasl", re.I)


def _render(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if _SECRET_KEY.search(k) else v) for k, v in fields.items()}


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            record.levelname.lower(),
            record.name,
            record.getMessage(),
        ]
        parts += [f"{k}={_render(v)}" for k, v in redact(fields).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += " error=" + _render(self.formatException(record.exc_info).splitlines()[-1])
        return line


class StructLogger:
    """`log.info("started", service="kafka", pid=12)` -> `... info infra.process started service=kafka pid=12`."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info, fields)


def get_logger(name: str) -> StructLogger:
    return StructLogger(name)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
