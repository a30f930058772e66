"""Log lines: one JSON object each, the exception as its type and traceback."""

from __future__ import annotations

import json
import logging

from service.logs import JsonFormatter


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("dtma.test", logging.WARNING, __file__, 1, message, args, info)


def test_a_record_is_one_line_of_json() -> None:
    line = JsonFormatter().format(record("circuit of %s: %s", "search", "open\nnext"))

    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "circuit of search: open\nnext"
    assert (parsed["level"], parsed["logger"]) == ("warning", "dtma.test")
    assert parsed["time"].endswith("+00:00")


def test_an_exception_is_named_and_its_traceback_kept_on_the_same_line() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        line = JsonFormatter().format(record("failed", exc=exc))

    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["error"] == "KeyError" and "Traceback" in parsed["traceback"]
