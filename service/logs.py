"""Log output: one JSON object per line (time, level, logger, message, and the exception's
type and traceback when there is one), or plain text for a terminal. Callers never pass secret
values to a logger; this module only shapes what they pass."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers of libraries that, below WARNING, log what passes through them: SQL statements with
# their parameters (wrapped data keys, ciphertext), Docker requests with their bodies (secret
# files). They stay at WARNING whatever DTMA_LOG_LEVEL says.
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "aiodocker")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, style: str) -> None:
    """Send every logger's records to stderr, in `style` ("json" or "text"); the libraries in
    QUIET_LOGGERS only from WARNING up, at any level."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet_libraries()


def quiet_libraries() -> None:
    """QUIET_LOGGERS at WARNING, whatever the root logger's level is or becomes."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
