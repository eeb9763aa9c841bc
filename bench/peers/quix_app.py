"""A peer: a quixstreams application with a batching HTTP sink, doing the forwarder's work.

    <peers venv>/bin/python bench/peers/quix_app.py BOOTSTRAP TOPIC GROUP URL

Run with the interpreter of the benchmark's own virtual environment (quixstreams is not a
dependency of the project; ``bench/bench_peers.py`` installs it). The dataframe parses with
quixstreams' JSON deserializer (orjson), keeps the events valid against ``schemas/``
(jsonschema-rs), sets ``uuid`` and ``time``; the sink encodes each event and posts a batch
synchronously (``requests``) as soon as an event type has 500 events, and the rest at each
checkpoint (``flush``, every ``commit_interval`` = 5 s by default), before the offsets are
committed. What it does not guarantee: at-least-once only at checkpoint level (a crash
replays up to 5 s of events), invalid events are dropped (no dead-letter topic), and a record
that is not JSON or a failed request stops the application (no retry). TD_API_KEY and
TD_WP13N_TOKEN come from the environment. Runs until SIGTERM.
"""

from __future__ import annotations

import sys
from typing import Any

import requests
from _work import MAX_EVENTS, Work, body_of, headers, path_of
from quixstreams import Application, message_context
from quixstreams.sinks import BaseSink


class HttpBatchSink(BaseSink):
    """Per-event-type batches of up to 500 events; partial batches go out at the checkpoint."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._buffers: dict[str, list[bytes]] = {}
        self._session = requests.Session()
        self._session.headers.update(headers())

    def _post(self, event_type: str, encoded: list[bytes]) -> None:
        response = self._session.post(
            self._url + path_of(event_type), data=body_of(encoded), timeout=10
        )
        response.raise_for_status()

    def add(
        self,
        value: Any,
        key: Any,
        timestamp: int,
        headers: Any,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        event_type = value["event_type"]
        buffer = self._buffers.setdefault(event_type, [])
        buffer.append(Work.encode(value))
        if len(buffer) >= MAX_EVENTS:
            del self._buffers[event_type]
            self._post(event_type, buffer)

    def flush(self) -> None:
        buffers, self._buffers = self._buffers, {}
        for event_type, encoded in buffers.items():
            self._post(event_type, encoded)


def main(bootstrap: str, topic: str, group: str, url: str) -> None:
    work = Work()
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )

    def enrich(event: dict[str, Any], key: Any, timestamp: int, headers: Any) -> dict[str, Any]:
        context = message_context()
        return work.enrich(event, topic, context.partition, context.offset, timestamp)

    sdf = app.dataframe(app.topic(topic, value_deserializer="json"))
    sdf = sdf.filter(work.valid).apply(enrich, metadata=True)
    sdf.sink(HttpBatchSink(url))
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
