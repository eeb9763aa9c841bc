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
lower in 6 of 6 rounds; an A/A run gave 1.004), with the same peak RSS (README, Performance). A
reference cycle that survives a young collection now waits for about 70,000 allocations rather
than 7,000: a fraction of a second at full speed.
"""

from __future__ import annotations

import gc

MIDDLE_EVERY = 100


def tune_collector() -> None:
    """Collect the middle generation every ``MIDDLE_EVERY`` young collections instead of 10."""
    young, _, old = gc.get_threshold()
    gc.set_threshold(young, MIDDLE_EVERY, old)
