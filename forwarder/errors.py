"""The exceptions of the forwarder: for bugs and fatal conditions only.

Outcomes inside the pipeline (a rejected event, a failed request, a throttled endpoint) are
values (``SendResult``, ``Decision``), never exceptions. What remains is small::

    ForwarderError                 base of everything the package raises on purpose
    ├── ConfigError                a bad configuration: each problem with its key and fix; stops start-up
    ├── SchemaLoadError            a schema file that cannot be loaded; stops start-up
    └── FatalError                 the service cannot go on (broker unreachable at start-up,
                                   a topic it may not create); the process exits non-zero

Foreign exceptions (aiokafka's, httpx's) never cross an adapter's boundary: the adapters turn
them into result values or into ``FatalError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ForwarderError(Exception):
    """Base class of the errors the forwarder raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of a configuration: the key (or variable), what is wrong, how to fix it."""

    key: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"config key {self.key!r}: {self.problem}"
        return f"{text} ({self.fix})" if self.fix else text


class ConfigError(ForwarderError):
    """The configuration is invalid: every problem found, each naming the key and the fix.

    ``key``, ``problem`` and ``fix`` are those of the first problem; ``problems`` holds them
    all, and the message lists them one per line.
    """

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self._set([ConfigProblem(key, problem, fix)])

    @classmethod
    def of(cls, problems: Sequence[ConfigProblem]) -> ConfigError:
        """One error for several problems (at least one)."""
        error = cls.__new__(cls)
        error._set(list(problems))
        return error

    def _set(self, problems: list[ConfigProblem]) -> None:
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        self.problems = tuple(problems)
        first = problems[0]
        self.key, self.problem, self.fix = first.key, first.problem, first.fix
        if len(problems) == 1:
            message = str(first)
        else:
            lines = [f"{len(problems)} problems in the configuration:"]
            lines += [f"  {p}" for p in problems]
            message = "\n".join(lines)
        Exception.__init__(self, message)


class SchemaLoadError(ForwarderError):
    """A JSON Schema file could not be read or compiled."""

    def __init__(self, path: object, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"schema {path}: {message}")


class FatalError(ForwarderError):
    """The service cannot continue; the message says why."""
