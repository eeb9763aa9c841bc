"""``forwarder sandbox``: a local HTTP server that behaves like the destination.

It checks what the real endpoints check (design.md section 1), rate-limits, injects faults on
demand, and records what it accepted so tests and benchmarks can count deliveries and
duplicates by ``uuid``. See ``server.py`` for the control API.
"""

from forwarder.sandbox.config import ErrorRule, Faults, SandboxConfig
from forwarder.sandbox.server import (
    RunningSandbox,
    serve,
    start_sandbox,
    write_test_certificate,
)

__all__ = [
    "ErrorRule",
    "Faults",
    "RunningSandbox",
    "SandboxConfig",
    "serve",
    "start_sandbox",
    "write_test_certificate",
]
