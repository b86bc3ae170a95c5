"""Log lines a person and a log search can both read: message, then `key=value` context, or
(`LOG_FORMAT=json`) one JSON object per line for a log collector.

Either way a line carries the context given in `extra=` (`job`, `team`…) and, inside a web
request, the request's id (`config.request_id`), so one request's lines can be found together.
"""

import json
import logging
from datetime import UTC, datetime

from apps import telemetry

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _context(record: logging.LogRecord) -> dict[str, object]:
    context = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    if "request_id" not in context and (request_id := telemetry.request_id.get()):
        context["request_id"] = request_id
    return context


class KeyValueFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={_quote(value)}" for key, value in _context(record).items())
        return f"{line} {context}" if context else line


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id when
    serving a request, job_id when the line is about a job, then the rest of the context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context(record)
        if "request_id" in context:
            entry["request_id"] = context.pop("request_id")
        if "job" in context:
            entry["job_id"] = context.pop("job")
        for key, value in context.items():
            entry.setdefault(key, value)  # never overwrite the fixed fields
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # Anything json cannot write (a UUID, a state enum, an exception) is written as text.
        return json.dumps(entry, default=str, ensure_ascii=False)
