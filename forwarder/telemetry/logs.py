"""Logging: structlog, JSON lines off a terminal and readable console output on one.

Every log line passes through ``Redactor``, which replaces each configured secret wherever it
appears (an exception message that quotes a header, a URL with a key in it) with ``***``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "***"


class Redactor:
    """A structlog processor that scrubs secret values from every string in the event."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Every secret, however short: a short password blanks out a few ordinary words in the
        # logs, which is the lesser harm. Longest first, so a secret holding another goes whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event_dict
        for key, value in list(event_dict.items()):
            event_dict[key] = self.scrub(value)
        return event_dict


def configure_logging(
    level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None
) -> None:
    """structlog for our own lines; the standard library's (aiokafka, aiohttp) rendered alike.

    Libraries log through :mod:`logging`: their records go through the same redaction and
    renderer to the same stream, at ``warning`` and above, so a JSON log stays all JSON.
    """
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    redactor = Redactor(secrets)
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))
