"""Interpreter settings for a long-running ``forwarder run``.

CPython's cyclic garbage collector collects its young generation every 700 container
allocations and its middle one every 10 young collections. The forwarder allocates several
containers per event (the consumer record, the parsed event, the ``Event``), so at 50,000
events/s the middle generation was collected about 14 times a second, and each time it walked
every record still pending: those outlive a young collection, since they wait for their batch
to be accepted. That walk, not the young collections, was most of the collector's time, and it
finds nothing: records, events and request bodies are freed by reference counting when they are
done (the HTTP sink breaks the one per-request reference cycle,
``forwarder.adapters.http_sink``).

So the middle generation is collected every ``MIDDLE_EVERY`` young collections instead. The
collector's time fell from 0.85-1.0 s to 0.29-0.32 s per 300,000 events (``gc.callbacks``), and
the process's CPU per event to 0.868 of the default's (``bench/bench_pair.py``: both at once,
lower in 6 of 6 rounds; an A/A run gave 1.004), with the same peak RSS (docs/performance.md). A
reference cycle that survives a young collection now waits for about 70,000 allocations rather
than 7,000: a fraction of a second at full speed.

The container image runs the forwarder with jemalloc as its malloc (``LD_PRELOAD``,
``deploy/Dockerfile``). Record values, request bodies and the fetched bytes are over the 512
bytes CPython's small-object allocator serves, so each is malloc's; with jemalloc the process
spent 0.92-0.94 of the CPU per event it spends with glibc's, and with jemalloc serving Python's
small objects too (``PYTHONMALLOC=malloc``) 0.95 of that again (docs/performance.md).
``allocator`` tells which malloc a process runs with and ``python_allocator`` what serves its
small objects; ``forwarder run`` logs both at start-up.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

MIDDLE_EVERY = 100
_ALLOCATORS = ("jemalloc", "mimalloc", "tcmalloc")


def tune_collector() -> None:
    """Collect the middle generation every ``MIDDLE_EVERY`` young collections instead of 10."""
    young, _, old = gc.get_threshold()
    gc.set_threshold(young, MIDDLE_EVERY, old)


def allocator_of(maps: str) -> str:
    """The malloc named by a process's memory map (the text of ``/proc/PID/maps``): jemalloc,
    mimalloc or tcmalloc when such a library is loaded, else "system" (the C library's)."""
    for line in maps.splitlines():
        name = line.rpartition("/")[2]
        for allocator in _ALLOCATORS:
            if name.startswith(f"lib{allocator}"):
                return allocator
    return "system"


def allocator(maps_path: str = "/proc/self/maps") -> str:
    """``allocator_of`` this process, or "unknown" with the reason where its map cannot be read
    (no ``/proc``: not Linux); the ``starting`` log line shows either."""
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as maps:
            return allocator_of(maps.read())
    except OSError as exc:
        return f"unknown ({type(exc).__name__}: {exc.strerror})"


def python_allocator(environ: Mapping[str, str]) -> str:
    """What serves CPython's small objects: "pymalloc" (its own allocator, the default) or the
    allocator ``PYTHONMALLOC`` names ("malloc": the process's malloc)."""
    return environ.get("PYTHONMALLOC") or "pymalloc"
