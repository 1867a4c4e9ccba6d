"""Log lines: JSON objects when asked for, carrying the request id of the request at hand."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from flashsale.logs import REQUEST_ID, configure


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", "json")
    token = REQUEST_ID.set("req-42")
    try:
        logging.getLogger("flashsale.test").warning("store unavailable: %s", "timeout")
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("flashsale.test").info("outside any request")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["request_id"] == "req-42"
    assert first["message"] == "store unavailable: timeout"
    assert (first["level"], first["logger"]) == ("WARNING", "flashsale.test")
    assert second["request_id"] == "-"


@pytest.mark.usefixtures("restore_root_logger")
def test_text_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure("WARNING", "text")
    logging.getLogger("flashsale.test").info("not shown at WARNING")
    logging.getLogger("flashsale.test").error("shown")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "ERROR flashsale.test" in lines[0]
    assert lines[0].endswith("shown request_id=-")
