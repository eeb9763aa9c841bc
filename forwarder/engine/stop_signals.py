"""SIGTERM and SIGINT for ``forwarder run``, from its first moment on.

Reading the configuration and the schemas, and starting the event loop, takes a while; a
signal in that window used to find the default action and kill the process (exit -15, as if
it had crashed). ``StopSignals.install`` runs first thing in ``forwarder run``, before anything
is read, and only notes the request. The service checks it before it starts the pipeline,
and hands the signals to the event loop once it runs (``attach``): a signal that came before
stops the pipeline at once, and either way the process ends with exit 0. Standard library
only, so that installing it costs no import time.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal seen, if any

    def install(self) -> StopSignals:
        """Note SIGTERM and SIGINT from now on instead of dying of them."""
        for sig in SIGNALS:
            signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def attach(self, loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
        """Let ``loop`` handle the signals, each calling ``stop``; call it now if one came."""
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._stop, sig, stop)
        if self.received is not None:
            stop()

    def _stop(self, signum: int, stop: Callable[[], None]) -> None:
        self._note(signum, None)
        stop()

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Back to noting them: a late signal while the process exits is not a crash."""
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        self.install()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""
