"""The exceptions of the forwarder: for bugs and fatal conditions only.

Outcomes inside the pipeline (a rejected event, a failed request, a throttled endpoint) are
values (``SendResult``, ``Decision``), never exceptions. What remains is small::

    ForwarderError                 base of everything the package raises on purpose
    ├── ConfigError                a bad configuration: names the key and the fix; stops start-up
    ├── SchemaLoadError            a schema file that cannot be loaded; stops start-up
    └── FatalError                 the service cannot go on (broker unreachable at start-up,
                                   a topic it may not create); the process exits non-zero

Foreign exceptions (aiokafka's, httpx's) never cross an adapter's boundary: the adapters turn
them into result values or into ``FatalError``.
"""

from __future__ import annotations


class ForwarderError(Exception):
    """Base class of the errors the forwarder raises on purpose."""


class ConfigError(ForwarderError):
    """The configuration is invalid. The message names the key and says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        message = f"config key {key!r}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class SchemaLoadError(ForwarderError):
    """A JSON Schema file could not be read or compiled."""

    def __init__(self, path: object, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"schema {path}: {message}")


class FatalError(ForwarderError):
    """The service cannot continue; the message says why."""
