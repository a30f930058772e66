"""Log lines: one JSON object each, the exception as its type and traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

import migrations
from eventstore import schema
from eventstore.engines import create_engine
from eventstore.keyring import load_ring
from service import logs
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


async def test_at_debug_no_statement_parameter_reaches_the_log_so_no_wrapped_key_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DTMA_LOG_LEVEL=DEBUG made aiosqlite and SQLAlchemy log every statement with its
    parameters: the wrapped data keys, which with the key file recover shredded secrets."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    logs.configure("DEBUG", "json")
    url = f"sqlite:///{tmp_path / 'dtma.db'}"
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        ring = await load_ring(engine, tmp_path / "dtma.key")
        key_id = await ring.create()
        ciphertext = await ring.encrypt(key_id, b"the secret")
        async with engine.connect() as connection:
            [wrapped] = (
                await connection.execute(
                    sa.select(schema.data_keys.c.wrapped).where(schema.data_keys.c.key_id == key_id)
                )
            ).one()
        await ring.destroy(key_id)
        logging.getLogger("dtma.test").debug("debug lines of our own still pass")
    finally:
        await engine.dispose()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    logged = capsys.readouterr().err
    assert "debug lines of our own still pass" in logged
    assert wrapped and wrapped not in logged and ciphertext not in logged
    assert "data_keys" not in logged
