"""Structured logging: one JSON object per line, with request id and user, no personnummer."""

from __future__ import annotations

import contextvars
import json
import logging
import re

request_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "request_context", default=None
)

# 10 or 12 digits with an optional separator: a personnummer or samordningsnummer.
_PERSONNUMMER = re.compile(r"(?<!\d)(\d{2})?(\d{6})[-+]?(\d{4})(?!\d)")


def mask_personnummer(text: str) -> str:
    return _PERSONNUMMER.sub("[personnummer]", text)


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context.get() or {}
        record.request_id = context.get("request_id", "-")
        request = context.get("request")
        user = getattr(request, "user", None) if request is not None else None
        # Read the user only if the request already loaded it: logging never queries.
        if request is not None and "_cached_user" in request.__dict__ and user is not None:
            record.user = user.get_username() if user.is_authenticated else "anonymous"
        else:
            record.user = "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_personnummer(record.getMessage()),
            "request_id": getattr(record, "request_id", "-"),
            "user": getattr(record, "user", "-"),
        }
        if record.exc_info:
            payload["exception"] = mask_personnummer(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)
