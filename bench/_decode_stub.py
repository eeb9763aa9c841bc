"""``forwarder`` with decoding replaced by a constant-time stub: an experiment, not a mode.

``bench_forwarder.py --decode-stub`` runs this beside the real forwarder to measure what the
rest of the pipeline (fetch, batching, HTTP, offsets) reaches if decoding and validation cost
nothing. Every record becomes an event for one destination with ``uuid`` set from its
coordinates; nothing is parsed or validated.
"""

from __future__ import annotations

from forwarder.core import decode
from forwarder.core.headers import Failure
from forwarder.core.records import RecordLike


def _stub(self: decode.Decoder, record: RecordLike) -> decode.Event | Failure:
    value = record.value or b"{}"
    head = b'{"uuid":"%d-%d",' % (record.partition, record.offset)
    return decode.Event(record, "clickstream.page_view", value.replace(b"{", head, 1), "")


if __name__ == "__main__":
    decode.Decoder.decode = _stub  # type: ignore[method-assign]
    from forwarder.cli import main

    main()
