"""Logs never carry a secret, wherever it hides in the event."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from forwarder.telemetry.logs import REDACTED, Redactor, configure_logging

KEY = "1/0123456789abcdef0123456789abcdef"
TOKEN = "1/1/sandbox-token-xyz"


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def test_a_key_quoted_in_an_exception_message_is_redacted_from_the_json_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", secrets=[KEY, TOKEN], stream=stream)
    log = structlog.get_logger("test")
    try:
        raise ConnectionError(f"request failed: Authorization: TD1 {KEY}")
    except ConnectionError:
        log.exception("request_failed", url=f"https://x.example/?token={TOKEN}")
    line = stream.getvalue()
    assert KEY not in line
    assert TOKEN not in line
    entry = orjson.loads(line)
    assert entry["event"] == "request_failed"
    assert f"TD1 {REDACTED}" in entry["exception"]
    assert entry["url"] == f"https://x.example/?token={REDACTED}"


def test_secrets_inside_nested_values_and_exception_objects_are_redacted() -> None:
    redactor = Redactor([KEY])
    event = {
        "event": "x",
        "headers": {"authorization": f"TD1 {KEY}"},
        "attempts": [f"k={KEY}", 3],
        "error": ValueError(f"bad key {KEY}"),
    }
    scrubbed = redactor(None, "info", dict(event))
    assert KEY not in repr(scrubbed)
    assert scrubbed["headers"]["authorization"] == f"TD1 {REDACTED}"
    assert scrubbed["attempts"] == [f"k={REDACTED}", 3]
    assert scrubbed["error"] == f"ValueError: bad key {REDACTED}"


def test_console_output_is_redacted_too() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", secrets=[KEY], stream=stream)
    structlog.get_logger("test").warning("endpoint_paused", detail=f"key {KEY} rejected")
    assert KEY not in stream.getvalue()
    assert "endpoint_paused" in stream.getvalue()


def test_library_logs_through_the_standard_library_are_json_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", secrets=[KEY], stream=stream)
    logging.getLogger("aiokafka.consumer").warning("connection to %s failed with %s", "b1", KEY)
    logging.getLogger("aiokafka.consumer").info("chatty detail")  # below warning: dropped
    (line,) = stream.getvalue().splitlines()
    entry = orjson.loads(line)
    assert entry["event"] == f"connection to b1 failed with {REDACTED}"
    assert entry["logger"] == "aiokafka.consumer"
    assert entry["level"] == "warning"


@pytest.mark.parametrize("secret", ["pw1", "hunt2", "k"])
def test_a_short_secret_is_redacted_too(secret: str) -> None:
    # A short SASL password is still a password: blanking a few ordinary words is the price.
    stream = io.StringIO()
    configure_logging("info", "json", secrets=[KEY, secret], stream=stream)
    structlog.get_logger("test").error("kafka_start_failed", error=f"SASL password {secret}!")
    entry = orjson.loads(stream.getvalue())
    assert entry["error"] == f"SASL password {REDACTED}!"
    assert Redactor([secret]).scrub(f"x{secret}y") == f"x{REDACTED}y"


def test_an_empty_secret_redacts_nothing() -> None:
    assert Redactor(["", KEY]).scrub("nothing secret here") == "nothing secret here"
