"""A SIGTERM that arrives while ``forwarder run`` still reads its configuration and schemas
ends it with exit 0, not -15 (issue 27 item 6): the handlers are installed before anything is
read.

The schema directory holds a named pipe, so the process is known to be reading (blocked in
the pipe's open) when the signal is sent: no sleeping and hoping for the right moment.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _open_writer(fifo: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    """Open the pipe for writing once the process opened it for reading (its schema load)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the process never read its schema directory"
        time.sleep(0.01)


def test_sigterm_while_reading_the_schemas_exits_0(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    fifo = schemas / "shared.json"
    os.mkfifo(fifo)
    env = {
        **os.environ,
        "TD_API_KEY": "1/key",
        "TD_WP13N_TOKEN": "1/1/token",
        "FORWARDER_SCHEMAS__DIR": str(schemas),
        "FORWARDER_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never reached
        "FORWARDER_OPS__PORT": "0",
        "FORWARDER_OPS__LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        writer = _open_writer(fifo, process, 60)
        process.send_signal(signal.SIGTERM)
        os.write(writer, b"{}")
        os.close(writer)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    assert b"stopped_before_start" in output
