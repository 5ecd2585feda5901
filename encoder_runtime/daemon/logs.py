"""Structured logs to stderr: ``key=value`` text (journald adds timestamps) or one JSON object a line."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg and any ``extra`` fields."""

    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        for k, v in vars(record).items():
            if k not in self._skip:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: str = "text", level: str = "info", prog: str = "sensorcodec") -> None:
    """Route the ``sensorcodec`` loggers to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        f = logging.Formatter(f"%(asctime)s {prog}[%(process)d] %(levelname)s %(name)s: %(message)s")
        f.converter = time.gmtime
        handler.setFormatter(f)
    root = logging.getLogger("sensorcodec")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
